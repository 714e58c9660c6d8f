// Overview: store and Kong status as /health reports them, counts, and the
// latest changes as a timeline.
import {get} from './api.js';
import {badge, fill, h, pretty, when} from './dom.js';

// Fields of /health shown in their own places; any other field the API
// adds is listed as it comes, so new status never needs a console change.
const known = new Set(['status', 'registered_routes', 'pending_changes', 'kong', 'error', 'reason']);
const kongKnown = new Set(['mode', 'leader', 'status', 'last_apply', 'last_error', 'refused', 'refused_since', 'failing_since']);

export function mount(view, _params, ctx) {
  const status = h('div', {class: 'cards'});
  const counts = h('dl', {class: 'counts'});
  const timeline = h('ol', {class: 'timeline'});
  const err = h('p', {class: 'error', role: 'alert'});
  view.append(h('h1', {}, 'Overview'), err,
    h('section', {'aria-labelledby': 'st-h'}, h('h2', {id: 'st-h'}, 'Status'), status),
    h('section', {'aria-labelledby': 'ct-h'}, h('h2', {id: 'ct-h'}, 'Counts'), counts),
    h('section', {'aria-labelledby': 'tl-h'}, h('h2', {id: 'tl-h'}, 'Latest changes'), timeline));
  let alive = true;

  async function refresh() {
    const [health, rs, sv] = await Promise.allSettled([get('/health', [503]), get('/routes'), get('/v1/services')]);
    if (!alive) return;
    const failed = [health, rs, sv].filter(r => r.status === 'rejected').map(r => r.reason.message);
    err.textContent = failed.length ? 'Could not load: ' + [...new Set(failed)].join('; ') : '';
    if (health.status === 'fulfilled' && health.value) fill(status, statusCards(health.value));
    const routes = rs.status === 'fulfilled' ? rs.value.routes : null;
    const svcs = sv.status === 'fulfilled' ? sv.value.services : null;
    fill(counts, countItems(routes, svcs));
    fill(timeline, timelineItems(routes || [], svcs || [], ctx.events));
  }
  refresh();
  // Kong's state (errors, pending changes, refusals) changes without a
  // registry event: poll /health's view of it while the page is open.
  const poll = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  return {refresh, unmount() { alive = false; clearInterval(poll); }};
}

function row(label, ...value) {
  return [h('dt', {}, label), h('dd', {}, ...value)];
}

function value(v) {
  if (v === null || v === undefined) return h('span', {class: 'muted'}, '—');
  if (Array.isArray(v)) {
    if (v.length === 0) return h('span', {class: 'muted'}, 'none');
    return h('ul', {class: 'plain'}, v.map(x => h('li', {}, typeof x === 'object' ? describe(x) : String(x))));
  }
  if (typeof v === 'object') return h('pre', {class: 'json'}, pretty(v));
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

// describe renders one refused entity (or any object) on one line: its
// name-like fields first, then the rest.
function describe(o) {
  if (o.kind && o.name) {
    return [h('strong', {}, o.kind.replace(/s$/, '') + ' ' + o.name), o.route ? ' (' + o.route + ')' : '',
      o.message ? ': ' + o.message : ''];
  }
  const head = o.name || o.service || o.entity || o.id || '';
  const rest = Object.entries(o).filter(([k]) => !['name', 'service', 'entity', 'id'].includes(k) || o[k] !== head)
    .map(([k, v]) => k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v));
  return [head ? h('strong', {}, head) : null, head && rest.length ? ' — ' : '', rest.join(', ')];
}

// statusCards: /health's "status" is the registry's as a whole: unhealthy
// (the store is down), degraded (Kong has been failing or refusing for a
// while, with the reason) or healthy.
function statusCards(hl) {
  const kong = hl.kong || {};
  const storeDown = hl.status === 'unhealthy';
  const store = h('section', {class: 'card', 'aria-label': 'Registry store'},
    h('h3', {}, 'Registry store (Redis) ', badge(storeDown ? 'unhealthy' : 'healthy')),
    h('dl', {class: 'kv'},
      row('Registered routes', value(hl.registered_routes)),
      hl.error ? row('Error', h('span', {class: 'error-text'}, hl.error)) : null,
      Object.entries(hl).filter(([k]) => !known.has(k)).map(([k, v]) => row(k.replaceAll('_', ' '), value(v)))));
  const kstate = hl.status === 'degraded' ? 'degraded' : kong.status || (kong.last_error ? 'error' : (storeDown ? 'unknown' : 'ok'));
  const refused = kong.refused ?? hl.refused;
  const kcard = h('section', {class: 'card', 'aria-label': 'Kong'},
    h('h3', {}, 'Kong ', badge(kstate)),
    h('dl', {class: 'kv'},
      // Rows for fields this adminsvc does not report are left out rather
      // than shown empty; last_error is omitted by the API when there is none.
      hl.reason ? row('Degraded', h('span', {class: 'error-text'}, hl.reason)) : null,
      'mode' in kong ? row('Mode', value(kong.mode)) : null,
      row('Sync leader (this replica)', value(kong.leader)),
      row('Pending changes', value(hl.pending_changes)),
      row('Last applied', kong.last_apply ? when(kong.last_apply) : value(null)),
      row('Last error', kong.last_error ? h('span', {class: 'error-text'}, kong.last_error) : h('span', {class: 'muted'}, 'none')),
      kong.failing_since ? row('Failing since', when(kong.failing_since)) : null,
      refused !== undefined ? row('Entities Kong refused', value(refused)) : null,
      kong.refused_since ? row('Refusing since', when(kong.refused_since)) : null,
      Object.entries(kong).filter(([k]) => !kongKnown.has(k)).map(([k, v]) => row(k.replaceAll('_', ' '), value(v)))));
  return [store, kcard];
}

function countItems(routes, svcs) {
  const n = v => (v === null ? '—' : String(v));
  const inst = svcs ? svcs.flatMap(s => s.instances || []) : null;
  const item = (label, v) => h('div', {class: 'count'}, h('dt', {}, label), h('dd', {}, n(v)));
  return [
    item('Routes', routes ? routes.length : null),
    item('Services', svcs ? svcs.length : null),
    item('Instances', inst ? inst.length : null),
    item('Draining (weight 0)', inst ? inst.filter(i => i.weight === 0).length : null),
    item('Leased (TTL)', inst ? inst.filter(i => i.ttl_s > 0).length : null),
    item('In maintenance', svcs ? svcs.filter(s => s.maintenance && s.maintenance.enabled).length : null),
  ];
}

function timelineItems(routes, svcs, events) {
  const items = [];
  for (const r of routes) {
    items.push({at: r.registered_at, kind: 'route', text: ['Route ', h('code', {}, r.host + r.path), ' → ', r.backend, ' registered']});
  }
  for (const s of svcs) {
    for (const i of s.instances || []) {
      items.push({at: i.updated_at, kind: 'instance', text: ['Instance ', h('a', {href: '#/services/' + encodeURIComponent(s.name)}, s.name + '/' + i.id),
        ' at ', i.address, ', weight ' + i.weight, ' updated']});
    }
  }
  for (const e of events) {
    items.push({at: e.at.toISOString(), kind: 'event', text: ['Change to ', h('code', {}, e.service), ' (version ' + e.version + ') seen live']});
  }
  items.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  if (items.length === 0) return [h('li', {class: 'empty'}, 'Nothing registered yet.')];
  return items.slice(0, 20).map(it => h('li', {class: 'tl-' + it.kind}, when(it.at), ' ', h('span', {}, it.text)));
}
