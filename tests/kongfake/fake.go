package kongfake

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// PluginSchema validates a plugin's config the way Kong does with the
// plugin's schema: it returns the config with defaults filled in, or Kong's
// nested field-error map. tests/kongschema's *Plugin satisfies it.
type PluginSchema interface {
	Validate(config map[string]any) (filled map[string]any, errs map[string]any)
}

// Options configure a Fake.
type Options struct {
	// DBLess makes the fake behave like Kong with database = off: entity
	// writes answer 405 code 12, configuration comes through POST /config.
	DBLess bool
	// Version is what GET / reports; default "3.9.1".
	Version string
	// Plugins are the plugins enabled besides the bundled
	// response-transformer; a nil schema accepts any config as is.
	Plugins map[string]PluginSchema
	// Now is the clock for created_at/updated_at; default time.Now.
	Now func() time.Time
	// UpdateFrequency is what GET / reports as db_update_frequency and
	// worker_state_update_frequency (seconds; Kong's default is 5). The
	// fake itself has no router to rebuild: its writes count at once, as
	// the default 0 says.
	UpdateFrequency float64
}

type kindDef struct {
	name        string
	fields      []field
	endpointKey string
	uniques     []string
}

var kinds = map[string]*kindDef{
	"services":  {name: "services", fields: serviceFields, endpointKey: "name", uniques: []string{"name"}},
	"routes":    {name: "routes", fields: routeFields, endpointKey: "name", uniques: []string{"name"}},
	"upstreams": {name: "upstreams", fields: upstreamFields, endpointKey: "name", uniques: []string{"name"}},
	"targets":   {name: "targets", fields: targetFields, endpointKey: "target"},
	"plugins":   {name: "plugins", fields: pluginFields, uniques: []string{"instance_name"}},
	"consumers": {name: "consumers", fields: consumerFields, endpointKey: "username", uniques: []string{"username", "custom_id"}},
}

// children lists the nested collections Kong's Admin API serves, with the
// foreign field that links the child to its parent.
var children = map[string]map[string]string{
	"services":  {"routes": "service", "plugins": "service"},
	"routes":    {"plugins": "route"},
	"consumers": {"plugins": "consumer"},
	"upstreams": {"targets": "upstream"},
}

// emptyCollections are collections decK lists that the fake never holds.
var emptyCollections = map[string]bool{
	"certificates": true, "ca_certificates": true, "snis": true, "vaults": true, "keys": true,
	"key-sets": true, "key-auths": true, "basic-auths": true, "hmac-auths": true, "jwts": true,
	"oauth2": true, "acls": true, "mtls-auths": true, "consumer_groups": true, "filter-chains": true,
	"workspaces": true, "rbac": true, "licenses": true,
}

// Fake is a Kong Admin API. Its zero value is not usable: use New or Start.
type Fake struct {
	opts Options

	mu         sync.Mutex
	db         map[string]map[string]map[string]any // kind → id → entity
	idx        map[string]map[string]string         // kind → unique key → id
	gen        int64                                // bumped by every write
	tagCache   map[string]tagCacheEntry
	counts     map[string]int
	configHash string
	pushes     int

	srvMu sync.Mutex
	addr  string
	srv   *http.Server
}

// New returns a fake that is not listening; use it as an http.Handler or
// call Listen.
func New(opts Options) *Fake {
	if opts.Version == "" {
		opts.Version = "3.9.1"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Fake{opts: opts, counts: map[string]int{}}
	f.wipe()
	return f
}

// Start returns a fake listening on a loopback port, stopped at test end.
func Start(t testing.TB, opts Options) *Fake {
	t.Helper()
	f := New(opts)
	if err := f.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("kongfake: %v", err)
	}
	t.Cleanup(f.Stop)
	return f
}

// Listen serves on addr (host:port; port 0 picks one).
func (f *Fake) Listen(addr string) error {
	f.srvMu.Lock()
	defer f.srvMu.Unlock()
	if f.srv != nil {
		return errors.New("already listening")
	}
	var ln net.Listener
	var err error
	// A just-closed port can linger briefly; retry for a moment.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	f.addr = ln.Addr().String()
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	srv := f.srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the Admin API base URL.
func (f *Fake) URL() string {
	f.srvMu.Lock()
	defer f.srvMu.Unlock()
	return "http://" + f.addr
}

// Stop closes the listener and every connection: Kong is down. State is
// kept (DB mode keeps its database); see Wipe for a DB-less restart.
func (f *Fake) Stop() {
	f.srvMu.Lock()
	defer f.srvMu.Unlock()
	if f.srv != nil {
		_ = f.srv.Close()
		f.srv = nil
	}
}

// Restart listens again on the same address after Stop.
func (f *Fake) Restart() error { return f.Listen(f.addr) }

// Wipe forgets every entity, like a DB-less Kong restarted without a config.
func (f *Fake) Wipe() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wipe()
}

func (f *Fake) wipe() {
	f.db = map[string]map[string]map[string]any{}
	f.idx = map[string]map[string]string{}
	f.gen++
	f.tagCache = map[string]tagCacheEntry{}
	for k := range kinds {
		f.db[k] = map[string]map[string]any{}
		f.idx[k] = map[string]string{}
	}
	f.configHash = strings.Repeat("0", 32)
}

// Counts returns requests served per "METHOD /template", e.g.
// "GET /services" or "PUT /upstreams/{id}/targets/{id}".
func (f *Fake) Counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.counts))
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

// TotalCalls is the number of requests served since the last ResetCounts.
func (f *Fake) TotalCalls() int {
	n := 0
	for _, v := range f.Counts() {
		n += v
	}
	return n
}

// ResetCounts zeroes the request counters.
func (f *Fake) ResetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = map[string]int{}
}

// ConfigPushes counts successful POST /config calls.
func (f *Fake) ConfigPushes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pushes
}

// List returns copies of every entity of kind, sorted by id.
func (f *Fake) List(kind string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sorted(kind, nil)
}

// Find returns a copy of the entity of kind whose name (or endpoint key) is key.
func (f *Fake) Find(kind, key string) (map[string]any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.lookup(kinds[kind], key)
	if e == nil {
		return nil, false
	}
	return clone(e).(map[string]any), true
}

func (f *Fake) sorted(kind string, keep func(map[string]any) bool) []map[string]any {
	return f.page(kind, keep, -1)
}

// page returns copies of up to limit (all when < 0) matching entities in id
// order, plus one more uncopied when there is a next page. Only the page is
// copied, so paging through a large kind stays cheap.
func (f *Fake) page(kind string, keep func(map[string]any) bool, limit int) []map[string]any {
	ids := make([]string, 0, len(f.db[kind]))
	for id, e := range f.db[kind] {
		if keep == nil || keep(e) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit >= 0 && len(ids) > limit+1 {
		ids = ids[:limit+1]
	}
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		out[i] = clone(f.db[kind][id]).(map[string]any)
	}
	return out
}

func (f *Fake) lookup(k *kindDef, key string) map[string]any {
	if k == nil {
		return nil
	}
	if e, ok := f.db[k.name][key]; ok {
		return e
	}
	if k.endpointKey == "" || isUUID(key) {
		return nil
	}
	for _, e := range f.db[k.name] {
		if e[k.endpointKey] == key {
			return e
		}
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := fmt.Sprintf("%x", b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func readBody(r *http.Request) (map[string]any, *apiError) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, message(http.StatusBadRequest, "failed to read body")
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return map[string]any{}, nil
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return formBody(string(raw))
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, message(http.StatusBadRequest, "Cannot parse JSON body")
	}
	return m, nil
}
