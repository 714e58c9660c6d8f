// Services: the /v1 registry. The list shows every service; a service's
// page shows its instances (address, weight, lease, health, breaker) and
// lets the operator change a weight, drain or enable an instance and
// toggle maintenance.
import {call, enc, get} from './api.js';
import {badge, cell, fill, h, span, table, toast} from './dom.js';

export function mount(view, params) {
  return params[0] ? detail(view, params[0]) : list(view);
}

function list(view) {
  const err = h('p', {class: 'error', role: 'alert'});
  const body = h('div', {id: 'sv-list'});
  view.append(h('h1', {}, 'Services'), err, body);
  let alive = true;
  async function refresh() {
    let svcs;
    try {
      svcs = (await get('/v1/services')).services || [];
    } catch (e) {
      if (alive) err.textContent = 'Could not load services: ' + e.message;
      return;
    }
    // Per-service health (breakers, leases); a failure shows as unknown.
    const health = await Promise.all(svcs.map(s => get(`/v1/services/${enc(s.name)}/health`).catch(() => null)));
    if (!alive) return;
    err.textContent = '';
    fill(body, table('Services', ['Service', 'Status', 'Instances', 'Healthy', 'Tags'],
      svcs.map((s, i) => h('tr', {'data-service': s.name},
        cell('Service', h('a', {href: '#/services/' + enc(s.name)}, s.name)),
        cell('Status', badge(health[i] ? health[i].status : 'unknown')),
        cell('Instances', String((s.instances || []).length)),
        cell('Healthy', health[i] ? String(health[i].healthy_instances) : '—'),
        cell('Tags', (s.tags || []).join(', ') || h('span', {class: 'muted'}, 'none')))),
      'No services registered.'));
  }
  refresh();
  return {refresh, unmount() { alive = false; }};
}

// The weight an instance had before it was drained, so Enable restores it;
// kept in this tab only (the API has no such field).
const drainedKey = (svc, id) => `sr.drained.${svc}/${id}`;

function detail(view, name) {
  const err = h('p', {class: 'error', role: 'alert'});
  const status = h('span', {id: 'sv-status'});
  const maint = h('div', {class: 'card', id: 'sv-maint'});
  const inst = h('div', {id: 'sv-instances'});
  view.append(h('p', {class: 'crumbs'}, h('a', {href: '#/services'}, 'Services'), ' / '),
    h('h1', {}, name, ' ', status), err,
    h('section', {'aria-labelledby': 'mt-h'}, h('h2', {id: 'mt-h'}, 'Maintenance'), maint),
    h('section', {'aria-labelledby': 'in-h'}, h('h2', {id: 'in-h'}, 'Instances'), inst));
  let alive = true;
  let maintMsg = null; // the message being typed survives refreshes

  async function refresh() {
    let svc, health;
    try {
      [svc, health] = await Promise.all([get(`/v1/services/${enc(name)}`), get(`/v1/services/${enc(name)}/health`)]);
    } catch (e) {
      if (alive) err.textContent = `Could not load ${name}: ${e.message}`;
      return;
    }
    if (!alive) return;
    err.textContent = '';
    fill(status, badge(health.status));
    renderMaintenance(svc.maintenance || {});
    renderInstances(svc, health);
  }

  function renderMaintenance(m) {
    const on = !!m.enabled;
    const input = h('input', {id: 'mt-msg', autocomplete: 'off', value: maintMsg ?? (m.message || ''), placeholder: 'Down for maintenance'});
    input.addEventListener('input', () => { maintMsg = input.value; });
    const btn = h('button', {type: 'submit', id: 'mt-toggle', class: on ? '' : 'danger', 'aria-pressed': String(on)},
      on ? 'End maintenance' : 'Start maintenance');
    const form = h('form', {class: 'inline'}, h('label', {for: 'mt-msg'}, 'Message'), input, btn);
    form.addEventListener('submit', async ev => {
      ev.preventDefault();
      try {
        await call('POST', `/v1/services/${enc(name)}/maintenance`, {enabled: !on, message: input.value.trim()});
        maintMsg = null;
        toast(on ? `${name}: maintenance ended` : `${name}: in maintenance`);
        await refresh();
        document.getElementById('mt-toggle')?.focus();
      } catch (e) {
        toast(`maintenance: ${e.message}`, true);
      }
    });
    const focused = document.activeElement && document.activeElement.id;
    fill(maint, h('p', {}, on ? badge('maintenance') : badge('serving'), ' ',
      on ? `The plugin answers 503${m.message ? ': “' + m.message + '”' : ''}.` : 'Traffic is served.'), form);
    if (focused === 'mt-msg') input.focus();
  }

  function renderInstances(svc, health) {
    const hmap = Object.fromEntries((health.instances || []).map(i => [i.id, i]));
    // Keep a weight being typed and the focus across a live refresh.
    const typing = {};
    for (const el of inst.querySelectorAll('input[data-dirty]')) typing[el.dataset.inst] = el.value;
    const focusId = document.activeElement && inst.contains(document.activeElement) ? document.activeElement.id : null;
    const rows = (svc.instances || []).slice().sort((a, b) => a.id.localeCompare(b.id))
      .map(i => instanceRow(i, hmap[i.id] || {}, typing[i.id]));
    fill(inst, table(`Instances of ${name}`, ['Instance', 'Address', 'Weight', 'Lease', 'Health', 'Breaker', ''],
      rows, 'No instances.'));
    if (focusId) document.getElementById(focusId)?.focus();
  }

  function instanceRow(i, hi, typed) {
    const wid = `w-${i.id}`;
    const w = h('input', {id: wid, type: 'number', min: 0, max: 65535, step: 1, value: typed ?? i.weight,
      'data-inst': i.id, 'aria-label': `Weight of ${i.id}`, class: 'weight'});
    if (typed !== undefined) w.dataset.dirty = '1';
    w.addEventListener('input', () => { w.dataset.dirty = '1'; });
    const save = h('button', {type: 'submit', id: `ws-${i.id}`, 'aria-label': `Set the weight of ${i.id}`}, 'Set');
    const wform = h('form', {class: 'inline weight-form'}, w, save);
    wform.addEventListener('submit', ev => {
      ev.preventDefault();
      setWeight(i, Number(w.value));
    });
    const drained = i.weight === 0;
    const act = h('button', {type: 'button', id: `dr-${i.id}`, class: drained ? '' : 'danger',
      'aria-label': `${drained ? 'Enable' : 'Drain'} ${i.id}`}, drained ? 'Enable' : 'Drain');
    act.addEventListener('click', () => {
      if (drained) {
        const prev = Number(sessionStorage.getItem(drainedKey(name, i.id))) || 100;
        setWeight(i, prev);
      } else {
        sessionStorage.setItem(drainedKey(name, i.id), String(i.weight));
        setWeight(i, 0);
      }
    });
    return h('tr', {'data-instance': i.id},
      cell('Instance', h('strong', {}, i.id), i.tags && i.tags.length ? h('small', {class: 'muted'}, ' ' + i.tags.join(', ')) : null),
      cell('Address', h('code', {}, (i.scheme ? i.scheme + '://' : '') + i.address)),
      cell('Weight', wform),
      cell('Lease', lease(i)),
      cell('Health', badge(hi.status || 'unknown')),
      cell('Breaker', breaker(hi)),
      cell('', act));
  }

  async function setWeight(i, weight) {
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) {
      toast('weight: must be a whole number between 0 and 65535', true);
      return;
    }
    try {
      await call('PATCH', `/v1/services/${enc(name)}/instances/${enc(i.id)}`, {weight});
      toast(`${name}/${i.id}: weight ${weight}`);
      const el = document.getElementById(`w-${i.id}`);
      if (el) delete el.dataset.dirty;
      await refresh();
    } catch (e) {
      toast(`${name}/${i.id}: ${e.message}`, true);
    }
  }

  // Lease countdowns tick every second without asking the API.
  const tick = setInterval(() => {
    for (const el of inst.querySelectorAll('[data-expires]')) el.textContent = leaseText(el.dataset.expires);
  }, 1000);
  refresh();
  return {refresh, unmount() { alive = false; clearInterval(tick); }, interested: s => s === name};
}

function lease(i) {
  if (!i.ttl_s) return h('span', {class: 'muted'}, 'no lease');
  return h('span', {'data-expires': i.expires_at, title: `TTL ${i.ttl_s}s`}, leaseText(i.expires_at));
}

function leaseText(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return s > 0 ? 'expires in ' + span(s) : 'expired';
}

// breaker shows the shared state (closed / open until … / half-open) and,
// when the API reports them, the state each Kong node saw.
function breaker(hi) {
  const st = hi.breaker || 'unknown';
  const until = hi.breaker_until || hi.open_until;
  const main = [badge(st.replace('_', '-'), 'br-' + st), st === 'open' && until ? ' until ' + new Date(until).toLocaleTimeString() : ''];
  const nodes = hi.breakers || hi.nodes;
  if (!nodes || typeof nodes !== 'object') return main;
  const list = Array.isArray(nodes) ? nodes.map(n => [n.node || n.id || '?', n]) : Object.entries(nodes);
  return [main, h('ul', {class: 'plain nodes'}, list.map(([node, v]) => h('li', {}, node + ': ',
    typeof v === 'object' ? (v.state || v.breaker || JSON.stringify(v)) : String(v))))];
}
