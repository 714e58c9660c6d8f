package kongsync

import (
	"time"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// In DB mode a Kong worker rebuilds its router and its plugins iterator in
// two separate timers (runloop/handler.lua: "router-rebuild" and
// "plugins-iterator-rebuild", each every worker_state_update_frequency;
// other nodes learn of a change through cluster events polled every
// db_update_frequency, delayed by db_update_propagation). Written together,
// the catch-all route can reach a worker's router before its plugin reaches
// that worker's plugins iterator: for that moment Kong proxies unknown
// requests to the catch-all's upstream, which has no targets on purpose,
// and answers 503 instead of its own 404 (seen in a real Kong 3.4.2 under
// load). So the route is created only once its plugin has been in Kong for
// settle = db_update_frequency + db_update_propagation +
// 2 × worker_state_update_frequency (one timer period to notice, one more
// for a slow rebuild of a large iterator). DB-less Kong swaps router and
// plugins iterator together (declarative reconfigure), so no wait there.

// kongDefaultSettle is settle for Kong's defaults (5 s, 0 s, 5 s), used
// when GET / does not say.
const kongDefaultSettle = 15 * time.Second

// kongTimings is the part of GET /'s configuration that settle reads.
type kongTimings struct {
	DBUpdateFrequency          *float64 `json:"db_update_frequency"`
	DBUpdatePropagation        *float64 `json:"db_update_propagation"`
	WorkerStateUpdateFrequency *float64 `json:"worker_state_update_frequency"`
}

// settle is how long the catch-all's plugin must have been in Kong before
// its route is created; Kong's default for each setting GET / leaves out.
func (k kongTimings) settle() time.Duration {
	or := func(v *float64, def float64) float64 {
		if v == nil || *v < 0 {
			return def
		}
		return *v
	}
	s := or(k.DBUpdateFrequency, 5) + or(k.DBUpdatePropagation, 0) + 2*or(k.WorkerStateUpdateFrequency, 5)
	return time.Duration(s * float64(time.Second))
}

var (
	fastPathPluginKey = key{kindPlugin, translator.FastPathPluginID}
	fastPathRouteKey  = key{kindRoute, fastPathRouteID}
)

// holdCatchAll drops the catch-all route from want while its plugin has
// not been in Kong for settle (see above), and returns how long until it
// has (0: nothing held). inKong says what Kong holds of the two. A route
// already in Kong is never held back (nor deleted for it).
func (d *dbSync) holdCatchAll(want desired, inKong func(key) bool) (desired, time.Duration) {
	d.pending = false
	if _, ok := want.get(kindRoute, fastPathRouteID); !ok {
		d.pluginSince = time.Time{}
		return want, 0
	}
	if inKong(fastPathRouteKey) {
		return want, 0
	}
	wait := d.settle
	if inKong(fastPathPluginKey) {
		if d.pluginSince.IsZero() {
			d.pluginSince = d.now()
		}
		wait -= d.now().Sub(d.pluginSince)
	} else {
		// Created by this apply: the clock starts once Kong has it.
		d.pluginSince = time.Time{}
	}
	if wait <= 0 {
		return want, 0
	}
	delete(want.byKind[kindRoute], fastPathRouteID)
	d.pending = true
	return want, wait
}

// notePluginWritten starts the settle clock when an apply that held the
// route back has written the plugin.
func (d *dbSync) notePluginWritten(want desired) {
	if _, ok := want.get(kindPlugin, translator.FastPathPluginID); ok && d.pluginSince.IsZero() && d.pending {
		d.pluginSince = d.now()
	}
}
