package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type hostPort struct {
	host string
	port int
}

type headerOp struct {
	op     string // set, add, clear
	name   string
	values []string
}

type exitInfo struct {
	status  int
	body    []byte
	headers map[string][]string
}

// savedData is what plugin.lua keeps for the log timer.
type savedData struct {
	serialize       []byte
	responseStatus  int
	requestHeaders  http.Header
	responseHeaders http.Header
	source          string
}

type tryInfo struct {
	IP    string `json:"ip"`
	Port  int    `json:"port"`
	Start int64  `json:"balancer_start"`
	Lat   int64  `json:"balancer_latency"`
	State string `json:"state,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// reqCtx is one request as the plugin sees it through the PDK.
type reqCtx struct {
	k          *Kong
	w          *worker
	phase      string
	req        *http.Request
	reqHeaders http.Header
	clientIP   string
	clientPort int
	serverPort int
	route      *Route
	service    *Service
	start      time.Time
	requestID  string
	stats      *RequestStats

	sharedMu sync.Mutex
	shared   map[string]any
	ngxCtx   map[string]any

	respHeaders       http.Header
	clearedResp       []string
	upstreamHeaderOps []headerOp
	upstreamPath      *string
	upstreamQuery     *string
	upstreamMethod    string
	upstreamScheme    string
	target            *hostPort
	upstreamOverride  string
	exit              *exitInfo

	// filled while proxying, for serialize and get_var
	upstreamURI string
	tries       []tryInfo
	status      int
	proxyLat    int64
	upstreamLat int64
	saved       *savedData
}

func (rc *reqCtx) host() string {
	h := rc.req.Host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.ToLower(h)
}

// ngxVar answers kong.nginx.get_var for the variables a plugin may ask.
func (rc *reqCtx) ngxVar(name string) (string, bool) {
	switch name {
	case "host":
		return rc.host(), true
	case "remote_addr", "realip_remote_addr", "binary_remote_addr":
		return rc.clientIP, true
	case "remote_port":
		return strconv.Itoa(rc.clientPort), true
	case "server_port":
		return strconv.Itoa(rc.serverPort), true
	case "scheme":
		return "http", true
	case "request_method":
		return rc.req.Method, true
	case "request_uri":
		return rc.req.URL.RequestURI(), true
	case "uri":
		return rc.req.URL.Path, true
	case "upstream_uri":
		return rc.upstreamURI, rc.upstreamURI != ""
	case "status":
		if rc.status == 0 {
			return "", false
		}
		return strconv.Itoa(rc.status), true
	case "upstream_addr":
		if len(rc.tries) == 0 {
			return "", false
		}
		parts := make([]string, len(rc.tries))
		for i, t := range rc.tries {
			parts[i] = net.JoinHostPort(t.IP, strconv.Itoa(t.Port))
		}
		return strings.Join(parts, ", "), true
	case "upstream_status":
		if len(rc.tries) == 0 {
			return "", false
		}
		parts := make([]string, len(rc.tries))
		for i, t := range rc.tries {
			if t.State == "failed" {
				parts[i] = strconv.Itoa(t.Code)
			} else {
				parts[i] = strconv.Itoa(rc.status)
			}
		}
		return strings.Join(parts, ", "), true
	case "kong_request_id":
		// Kong 3.4 has no such variable: get_var answers nil ("" for
		// go-pdk), as a real 3.4.2 did (fastpath-facts (a)).
		if rc.k.kong34() {
			return "", false
		}
		return rc.requestID, true
	}
	if strings.HasPrefix(name, "http_") {
		v := rc.reqHeaders.Get(headerName(strings.TrimPrefix(name, "http_")))
		return v, v != ""
	}
	return "", false
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP is Kong's proxy path: router, access, balancer with retries,
// response, then the log phase in the background after the response.
func (k *Kong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.totalRequests.Add(1)
	rc := k.newReqCtx(r)
	route, svc, matchedPath := k.match(r)
	if route == nil {
		// The router runs before any plugin: no plugin phase at all.
		rc.status = http.StatusNotFound
		k.kongError(rc, w, http.StatusNotFound, "no Route matched with those values")
		rc.stats.Status = rc.status
		close(rc.stats.done)
		return
	}
	rc.route, rc.service = route, svc
	rc.stats.Route = route.Name
	rc.upstreamURI = kongEscape(upstreamURI(route, svc, rc.path(), matchedPath))
	pe := k.pluginFor(route, svc)

	source, luaErr := "service", false
	if pe != nil && k.phases["access"] {
		source, luaErr = k.access(rc, pe)
	}
	respHeaders, source := k.respond(rc, w, source, luaErr)
	rc.stats.Status = rc.status

	if pe == nil || !k.phases["log"] {
		close(rc.stats.done)
		return
	}
	k.startLogPhase(rc, w, pe, respHeaders, source)
}

// newReqCtx is the state of one proxied request, counted in the stats
// when they are kept.
func (k *Kong) newReqCtx(r *http.Request) *reqCtx {
	rc := &reqCtx{
		k: k, w: k.pickWorker(), req: r, start: time.Now(), requestID: newRequestID(),
		stats: newStats(r), shared: map[string]any{}, ngxCtx: map[string]any{},
		respHeaders: http.Header{}, reqHeaders: withHost(r.Header, r.Host),
	}
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		rc.clientIP = host
		rc.clientPort, _ = strconv.Atoi(port)
	}
	if _, port, err := net.SplitHostPort(k.ln.Addr().String()); err == nil {
		rc.serverPort, _ = strconv.Atoi(port)
	}
	k.statsMu.Lock()
	if k.keepStats {
		k.requests = append(k.requests, rc.stats)
	}
	k.statsMu.Unlock()
	return rc
}

// access runs the plugin's access phase and says where the response comes
// from ("service", "exit" or "error") and whether a Lua error answers it.
func (k *Kong) access(rc *reqCtx, pe *pluginEntity) (source string, luaErr bool) {
	err := k.handleEvent(rc, pe, "access")
	switch {
	case err == nil:
	case errors.Is(err, errExit):
		return "exit", false
	case isPDKError(err):
		// A Lua error raised inside a PDK function: init.lua's plugin
		// loop answers delayed_response {message = "An unexpected error occurred"}.
		k.logLine("[kong] err " + err.Error())
		return "error", true
	case k.opts.FailOpen:
		// Kong 3.4: get_instance_id returns the socket error and
		// handle_event only logs errors: the phase is skipped and the
		// request proxied.
		k.logLine("[kong] err pluginserver error: " + err.Error())
	case isStartError(err):
		// Kong 3.9: get_instance_id raises the start error.
		k.logLine("[kong] err " + err.Error())
		return "error", true
	default:
		// pb_rpc.lua handle_event: kong.response.error(500).
		k.logLine("[kong] err pluginserver error: " + err.Error())
		return "error", false
	}
	return "service", false
}

// respond writes the response: the plugin's exit, Kong's error, or the
// upstream's (which may turn into an error after failed tries).
func (k *Kong) respond(rc *reqCtx, w http.ResponseWriter, source string, luaErr bool) (http.Header, string) {
	switch {
	case source == "exit":
		return k.writeExit(rc, w), source
	case luaErr:
		return k.kongJSON(rc, w, http.StatusInternalServerError, "An unexpected error occurred"), source
	case source == "error":
		return k.kongError(rc, w, http.StatusInternalServerError, "An unexpected error occurred"), source
	default:
		return k.proxy(rc, w)
	}
}

// startLogPhase flushes the response and runs the log phase after it, in
// the background.
func (k *Kong) startLogPhase(rc *reqCtx, w http.ResponseWriter, pe *pluginEntity, respHeaders http.Header, source string) {
	// plugin.lua: the log handler runs in a timer with the data saved now.
	rc.saved = &savedData{
		serialize:       k.serialize(rc, respHeaders, source),
		responseStatus:  rc.status,
		requestHeaders:  rc.reqHeaders,
		responseHeaders: respHeaders,
		source:          map[string]string{"service": "service", "exit": "exit", "error": "error"}[source],
	}
	// Counted before the response is flushed: a client that has its answer
	// and then asks WaitIdle must see this log phase as pending.
	k.logWG.Add(1)
	k.pendingLogs.Add(1)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go func() {
		defer k.logWG.Done()
		defer k.pendingLogs.Add(-1)
		defer close(rc.stats.done)
		if err := k.handleEvent(rc, pe, "log"); err != nil {
			k.logLine("[kong] err log phase: " + err.Error())
		}
	}()
}

func isPDKError(err error) bool {
	var le *luaError
	return errors.As(err, &le) || errors.Is(err, errUnimplemented)
}

func isStartError(err error) bool {
	var se *startError
	return errors.As(err, &se)
}

// match is the router: routes with more matching criteria first (hosts before
// paths before methods), plain hosts before wildcards, longest prefix path.
// A route with paths ["/"] and no hosts (the fast path's catch-all) thus
// ranks below every route with a host. Like Kong's traditional router
// (fastpath-facts (c), (f)): the Host header without a port of digits,
// compared as sent (no lowercasing), and the normalized path.
func (k *Kong) match(r *http.Request) (*Route, *Service, string) {
	host := routerHost(r.Host)
	path := kongNormalize(rawPath(r))
	k.mu.RLock()
	defer k.mu.RUnlock()
	var cands []routeCand
	for _, rt := range k.routes {
		if c, ok := matchRoute(rt, host, path, r.Method); ok {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, nil, ""
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].before(cands[j]) })
	best := cands[0]
	return best.route, k.services[best.route.Service], best.matched
}

// routeCand is a route that matches a request, with what orders it.
type routeCand struct {
	route    *Route
	criteria int
	mask     int
	plain    bool
	pathLen  int
	matched  string
}

// matchRoute says whether rt matches the request and how well.
func matchRoute(rt *Route, host, path, method string) (routeCand, bool) {
	c := routeCand{route: rt}
	if len(rt.Hosts) > 0 {
		ok := false
		for _, h := range rt.Hosts {
			if h == host {
				ok, c.plain = true, true
				break
			}
			if wildcardMatch(h, host) {
				ok = true
			}
		}
		if !ok {
			return c, false
		}
		c.criteria++
		c.mask |= 4
	}
	if len(rt.Paths) > 0 {
		best := -1
		for _, p := range rt.Paths {
			if strings.HasPrefix(path, p) && len(p) > best {
				best, c.matched = len(p), p
			}
		}
		if best < 0 {
			return c, false
		}
		c.pathLen = best
		c.criteria++
		c.mask |= 2
	}
	if len(rt.Methods) > 0 {
		ok := false
		for _, m := range rt.Methods {
			if strings.EqualFold(m, method) {
				ok = true
			}
		}
		if !ok {
			return c, false
		}
		c.criteria++
		c.mask |= 1
	}
	return c, true
}

// before orders candidates: more criteria first, then by category.
func (a routeCand) before(b routeCand) bool {
	if a.criteria != b.criteria {
		return a.criteria > b.criteria
	}
	// Kong's traditional router orders categories of equal size by
	// their bits: hosts before paths before methods.
	if a.mask != b.mask {
		return a.mask > b.mask
	}
	if a.plain != b.plain {
		return a.plain
	}
	return a.pathLen > b.pathLen
}

// routerHost is traditional.lua split_port for the router: the part
// before the first ':' when only digits (or nothing) follow.
func routerHost(h string) string {
	i := strings.IndexByte(h, ':')
	if i < 0 || strings.HasPrefix(h, "[") {
		return h
	}
	if strings.Trim(h[i+1:], "0123456789") != "" {
		return h
	}
	return h[:i]
}

func wildcardMatch(pattern, host string) bool {
	switch {
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	case strings.HasSuffix(pattern, ".*"):
		return strings.HasPrefix(host, pattern[:len(pattern)-1]) && len(host) > len(pattern)-1
	}
	return false
}

// upstreamURI joins the service path and the request path as Kong's default
// path_handling (v0) does, after strip_path.
func upstreamURI(rt *Route, svc *Service, reqPath, matched string) string {
	rem := reqPath
	if rt.stripPath() && matched != "" {
		rem = strings.TrimPrefix(reqPath, matched)
	}
	base := svc.Path
	if base == "" {
		base = "/"
	}
	switch {
	case rem == "":
		return base
	case strings.HasSuffix(base, "/") && strings.HasPrefix(rem, "/"):
		return base + rem[1:]
	case !strings.HasSuffix(base, "/") && !strings.HasPrefix(rem, "/"):
		return base + "/" + rem
	}
	return base + rem
}

// applyAccessHeaders puts the headers set with kong.response.* in access on a
// response (header_filter does it for proxied and Kong-made responses alike).
func (rc *reqCtx) applyAccessHeaders(h http.Header) {
	for _, name := range rc.clearedResp {
		h.Del(name)
	}
	for name, vs := range rc.respHeaders {
		h[name] = append([]string(nil), vs...)
	}
	// The response-transformer of the matched service runs in
	// header_filter too, after them: its add sees what access set.
	rc.k.transformResponse(rc, h)
}

// kongJSON is kong.response.exit(status, {message = msg}): the table body
// cjson-encoded, as for a plugin that raised an error.
func (k *Kong) kongJSON(rc *reqCtx, w http.ResponseWriter, status int, msg string) http.Header {
	body, _ := json.Marshal(map[string]string{"message": msg})
	h := w.Header()
	rc.applyAccessHeaders(h)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	k.kongHeaders(rc, h)
	rc.status = status
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return h.Clone()
}

// writeExit is kong.response.exit(status, body, headers) with a string body:
// earlier headers kept, exit headers set, the body as given.
func (k *Kong) writeExit(rc *reqCtx, w http.ResponseWriter) http.Header {
	ex := rc.exit
	h := w.Header()
	rc.applyAccessHeaders(h)
	hasLen := false
	for name, vs := range ex.headers {
		if strings.EqualFold(name, "Transfer-Encoding") {
			continue
		}
		if strings.EqualFold(name, "Content-Length") {
			hasLen = true
		}
		h[name] = vs
	}
	if !hasLen {
		h.Set("Content-Length", strconv.Itoa(len(ex.body)))
	}
	k.kongHeaders(rc, h)
	rc.status = ex.status
	w.WriteHeader(ex.status)
	_, _ = w.Write(ex.body)
	return h.Clone()
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// proxy is the balancer and upstream exchange with service.retries: a failed
// connection is retried, on the same target when the plugin set one.
func (k *Kong) proxy(rc *reqCtx, w http.ResponseWriter) (http.Header, string) {
	r := rc.req
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		return k.kongError(rc, w, http.StatusBadRequest, "Bad request"), "error"
	}
	svc := rc.service
	upName := rc.upstreamOverride
	if upName == "" && k.upstreamByName(svc.Host) != nil {
		upName = svc.Host
	}
	method, uri := rc.upstreamRequestLine()
	rc.upstreamURI = uri
	proxyStart := time.Now()
	rc.proxyLat = proxyStart.Sub(rc.start).Milliseconds()
	tries := svc.retries() + 1
	var lastErr error
	for i := 0; i < tries; i++ {
		tgt, hostHeader, err := k.pick(rc, svc, upName)
		if err != nil {
			lastErr = err
			break
		}
		ti := tryInfo{IP: tgt.host, Port: tgt.port, Start: time.Now().UnixMilli()}
		req, err := k.upstreamRequest(rc, method, uri, body, tgt, hostHeader)
		if err != nil {
			lastErr = err
			break
		}
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(svc.ConnectTimeout+svc.ReadTimeout)*time.Millisecond)
		dialStart := time.Now()
		resp, err := k.transport.RoundTrip(req.WithContext(ctx))
		if err != nil {
			cancel()
			ti.State, ti.Code = "failed", 502
			if errors.Is(err, context.DeadlineExceeded) {
				ti.Code = 504
			}
			ti.Lat = time.Since(dialStart).Milliseconds()
			rc.tries = append(rc.tries, ti)
			lastErr = err
			continue
		}
		rc.tries = append(rc.tries, ti)
		rc.upstreamLat = time.Since(dialStart).Milliseconds()
		h := k.relay(rc, w, resp)
		cancel()
		return h, "service"
	}
	return k.upstreamFailed(rc, w, lastErr), "error"
}

// upstreamRequestLine is the method and URI sent upstream, as the plugin
// may have changed them.
func (rc *reqCtx) upstreamRequestLine() (method, uri string) {
	r := rc.req
	method = r.Method
	if rc.upstreamMethod != "" {
		method = rc.upstreamMethod
	}
	uri = rc.upstreamURI
	if rc.upstreamPath != nil {
		uri = *rc.upstreamPath
	}
	query := r.URL.RawQuery
	if rc.upstreamQuery != nil {
		query = *rc.upstreamQuery
	}
	if query != "" {
		uri += "?" + query
	}
	return method, uri
}

// upstreamRequest is one try's request to tgt: the client's headers without
// hop-by-hop ones, Kong's X-Forwarded-* and the plugin's header changes.
func (k *Kong) upstreamRequest(rc *reqCtx, method, uri string, body []byte, tgt hostPort, hostHeader string) (*http.Request, error) {
	r := rc.req
	scheme := rc.service.protocol()
	if rc.upstreamScheme != "" {
		scheme = rc.upstreamScheme
	}
	req, err := http.NewRequest(method, scheme+"://"+net.JoinHostPort(tgt.host, strconv.Itoa(tgt.port))+uri, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	for _, hh := range hopHeaders {
		req.Header.Del(hh)
	}
	req.Host = hostHeader
	req.Header.Set("X-Forwarded-For", appendXFF(r.Header.Get("X-Forwarded-For"), rc.clientIP))
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", rc.host())
	req.Header.Set("X-Forwarded-Port", strconv.Itoa(rc.serverPort))
	req.Header.Set("X-Forwarded-Path", r.URL.Path)
	req.Header.Set("X-Real-IP", rc.clientIP)
	if !k.kong34() {
		req.Header.Set("X-Kong-Request-Id", rc.requestID)
	}
	for _, op := range rc.upstreamHeaderOps {
		switch op.op {
		case "set":
			if strings.EqualFold(op.name, "host") {
				req.Host = op.values[0]
				continue
			}
			req.Header[headerName(op.name)] = op.values
		case "add":
			for _, v := range op.values {
				req.Header.Add(op.name, v)
			}
		case "clear":
			req.Header.Del(op.name)
		}
	}
	return req, nil
}

// relay writes the upstream's response to the client with the plugin's and
// Kong's header changes, and returns the headers sent.
func (k *Kong) relay(rc *reqCtx, w http.ResponseWriter, resp *http.Response) http.Header {
	h := w.Header()
	for name, vs := range resp.Header {
		h[name] = vs
	}
	for _, hh := range hopHeaders {
		h.Del(hh)
	}
	rc.applyAccessHeaders(h)
	k.proxiedHeaders(rc, h)
	rc.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	_ = resp.Body.Close()
	return h.Clone()
}

// upstreamFailed answers when every try failed: 504 after a timeout, else 502.
func (k *Kong) upstreamFailed(rc *reqCtx, w http.ResponseWriter, lastErr error) http.Header {
	// The last failed try carries no state: Kong records a try's failure only
	// when the balancer starts the next one.
	if n := len(rc.tries); n > 0 {
		rc.tries[n-1].State, rc.tries[n-1].Code = "", 0
	}
	k.logLine(fmt.Sprintf("[kong] err upstream failed after %d tries: %v", len(rc.tries), lastErr))
	if errors.Is(lastErr, context.DeadlineExceeded) {
		return k.upstreamError(rc, w, http.StatusGatewayTimeout, "The upstream server is timing out")
	}
	return k.upstreamError(rc, w, http.StatusBadGateway, "An invalid response was received from the upstream server")
}

func appendXFF(prior, ip string) string {
	if prior == "" {
		return ip
	}
	return prior + ", " + ip
}

// pick chooses the target of one try and the Host header to send.
func (k *Kong) pick(rc *reqCtx, svc *Service, upName string) (hostPort, string, error) {
	if rc.target != nil {
		// set_target sets ngx.var.upstream_host = host, so the Host header is the
		// target host without its port (pdk/service.lua, runloop access.after).
		return *rc.target, rc.target.host, nil
	}
	var tgt hostPort
	hostname := svc.Host
	if upName != "" {
		t, err := k.nextTarget(upName)
		if err != nil {
			return hostPort{}, "", err
		}
		tgt = t
		hostname = t.host
		if u := k.upstreamByName(upName); u != nil && u.HostHeader != "" {
			hostname = u.HostHeader
		}
	} else {
		tgt = hostPort{host: svc.Host, port: svc.port()}
	}
	if rc.route.PreserveHost {
		return tgt, rc.req.Host, nil
	}
	// balancer.set_host_header: the port is added unless it is 80 for http.
	if tgt.port != 80 {
		hostname = net.JoinHostPort(hostname, strconv.Itoa(tgt.port))
	}
	return tgt, hostname, nil
}

// nextTarget is a weighted round robin over the upstream's targets.
func (k *Kong) nextTarget(name string) (hostPort, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	u := k.upstreams[name]
	if u == nil {
		return hostPort{}, fmt.Errorf("upstream %q not found", name)
	}
	var slots []string
	for _, t := range u.Targets {
		w := 100
		if t.Weight != nil {
			w = *t.Weight
		}
		for i := 0; i < (w+9)/10; i++ {
			slots = append(slots, t.Target)
		}
	}
	if len(slots) == 0 {
		return hostPort{}, fmt.Errorf("failure to get a peer from the ring-balancer")
	}
	n := k.rr[name]
	k.rr[name] = n + 1
	h, p, err := net.SplitHostPort(slots[n%len(slots)])
	if err != nil {
		return hostPort{}, fmt.Errorf("target %q: %w", slots[n%len(slots)], err)
	}
	port, _ := strconv.Atoi(p)
	return hostPort{host: h, port: port}, nil
}

func upstreamStatus(rc *reqCtx) string {
	v, _ := rc.ngxVar("upstream_status")
	return v
}

// serialize is kong.log.serialize for the saved log data (the fields a plugin
// reads: request, upstream_uri, response, tries, latencies, service, route).
func (k *Kong) serialize(rc *reqCtx, respHeaders http.Header, source string) []byte {
	lower := func(h http.Header) map[string]any {
		m := map[string]any{}
		for name, vs := range h {
			if len(vs) == 1 {
				m[strings.ToLower(name)] = vs[0]
			} else {
				m[strings.ToLower(name)] = vs
			}
		}
		return m
	}
	total := time.Since(rc.start).Milliseconds()
	svc, rt := rc.service, rc.route
	doc := map[string]any{
		"request": map[string]any{
			"uri": rc.req.URL.RequestURI(), "method": rc.req.Method,
			"url":     "http://" + rc.host() + ":" + strconv.Itoa(rc.serverPort) + rc.req.URL.RequestURI(),
			"headers": lower(rc.reqHeaders), "querystring": map[string]any{}, "size": rc.req.ContentLength,
			"id": rc.requestID,
		},
		"upstream_uri": rc.upstreamURI,
		// var.upstream_status: one status per try, "" when nothing was proxied.
		"upstream_status": upstreamStatus(rc),
		"response":        map[string]any{"status": rc.status, "headers": lower(respHeaders)},
		"latencies": map[string]any{
			"kong": rc.proxyLat, "proxy": rc.upstreamLat, "request": total, "receive": 0,
		},
		"service": map[string]any{
			"id": svc.ID, "name": svc.Name, "host": svc.Host, "port": svc.port(), "protocol": svc.protocol(),
			"path": svc.Path, "retries": svc.retries(), "connect_timeout": svc.ConnectTimeout,
			"read_timeout": svc.ReadTimeout, "write_timeout": svc.WriteTimeout, "ws_id": defaultWorkspace,
		},
		"route": map[string]any{
			"id": rt.ID, "name": rt.Name, "hosts": rt.Hosts, "paths": rt.Paths, "strip_path": rt.stripPath(),
			"preserve_host": rt.PreserveHost, "protocols": rt.Protocols, "service": map[string]any{"id": svc.ID},
			"ws_id": defaultWorkspace,
		},
		"client_ip":  rc.clientIP,
		"started_at": rc.start.UnixMilli(),
		"source":     map[string]string{"service": "upstream", "exit": "kong", "error": "kong"}[source],
		"workspace":  defaultWorkspace, "workspace_name": "default",
	}
	// No balancer ran (exit, error before proxying): Kong has no tries table
	// and cjson leaves the key out.
	if len(rc.tries) > 0 {
		doc["tries"] = rc.tries
	}
	b, _ := json.Marshal(doc)
	return b
}
