// Routes: the go-proxy registrations, searchable, filterable by host, with
// their options in full; register and deregister from the page.
import {call, get} from './api.js';
import {cell, fill, h, pretty, table, toast, when} from './dom.js';

export function mount(view) {
  const search = h('input', {id: 'rt-search', type: 'search', placeholder: 'host, path or backend', autocomplete: 'off'});
  const host = h('select', {id: 'rt-host'}, h('option', {value: ''}, 'All hosts'));
  const shown = h('p', {class: 'muted', 'aria-live': 'polite'});
  const list = h('div', {id: 'rt-list'});
  const err = h('p', {class: 'error', role: 'alert'});
  const form = registerForm(() => refresh());
  view.append(h('h1', {}, 'Routes'), err,
    h('div', {class: 'toolbar'},
      h('span', {class: 'grp grow'}, h('label', {for: 'rt-search'}, 'Search'), search),
      h('span', {class: 'grp'}, h('label', {for: 'rt-host'}, 'Host'), host)),
    shown, list, form);
  let routes = [];
  let alive = true;
  const confirming = new Set(); // host+path of rows waiting for a second click

  function render() {
    const q = search.value.trim().toLowerCase();
    const hv = host.value;
    const rows = routes.filter(r => (!hv || r.host === hv) &&
      (!q || (r.host + r.path + ' ' + r.backend).toLowerCase().includes(q)));
    shown.textContent = `${rows.length} of ${routes.length} routes`;
    fill(list, table('Registered routes', ['Host', 'Path', 'Backend', 'Registered', 'Options', ''],
      rows.map(routeRow), routes.length ? 'No route matches.' : 'No routes registered.'));
  }

  function routeRow(r) {
    const id = r.host + r.path;
    const btn = h('button', {type: 'button', class: 'danger', 'data-route': id});
    const label = on => {
      btn.textContent = on ? 'Confirm deregister' : 'Deregister';
      btn.setAttribute('aria-label', `${btn.textContent} ${id}`);
    };
    label(confirming.has(id));
    btn.addEventListener('click', async () => {
      if (!confirming.has(id)) {
        confirming.add(id);
        label(true);
        return;
      }
      confirming.delete(id);
      try {
        await call('POST', '/deregister', {host: r.host, path: r.path});
        toast(`Deregistered ${id}`);
        refresh();
      } catch (e) {
        toast(`Deregister ${id}: ${e.message}`, true);
      }
    });
    btn.addEventListener('blur', () => {
      if (confirming.delete(id)) label(false);
    });
    const opts = r.options && Object.keys(r.options).length ? h('pre', {class: 'json'}, pretty(r.options)) : h('span', {class: 'muted'}, 'none');
    return h('tr', {'data-route': id},
      cell('Host', r.host), cell('Path', h('code', {}, r.path)), cell('Backend', r.backend),
      cell('Registered', when(r.registered_at)), cell('Options', opts), cell('', btn));
  }

  async function refresh() {
    try {
      const data = await get('/routes');
      if (!alive) return;
      routes = data.routes || [];
      err.textContent = '';
    } catch (e) {
      if (!alive) return;
      err.textContent = 'Could not load routes: ' + e.message;
    }
    const hosts = [...new Set(routes.map(r => r.host))].sort();
    const cur = host.value;
    fill(host, h('option', {value: ''}, 'All hosts'), hosts.map(x => h('option', {value: x}, x)));
    host.value = hosts.includes(cur) ? cur : '';
    render();
  }
  search.addEventListener('input', render);
  host.addEventListener('change', render);
  refresh();
  return {refresh, unmount() { alive = false; }};
}

function field(id, label, input, hint) {
  input.id = id;
  return h('div', {class: 'field'}, h('label', {for: id}, label), input, hint ? h('small', {class: 'muted'}, hint) : null);
}

function registerForm(done) {
  const host = h('input', {name: 'host', required: true, autocomplete: 'off', placeholder: 'api.example.com'});
  const path = h('input', {name: 'path', required: true, autocomplete: 'off', placeholder: '/v1', value: '/'});
  const backend = h('input', {name: 'backend', required: true, autocomplete: 'off', placeholder: 'http://10.0.0.5:8080'});
  const options = h('textarea', {name: 'options', rows: 4, spellcheck: 'false', placeholder: '{"timeout": "30s"}'});
  const msg = h('p', {class: 'error', role: 'alert'});
  const form = h('form', {class: 'register', id: 'rt-register'},
    h('h2', {}, 'Register a route'),
    field('rt-f-host', 'Host', host), field('rt-f-path', 'Path', path),
    field('rt-f-backend', 'Backend URL', backend),
    field('rt-f-options', 'Options (JSON, optional)', options, 'timeout, websocket, headers, rate_limit, circuit_breaker, retry, health_check_path, …'),
    h('button', {type: 'submit'}, 'Register'), msg);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    msg.textContent = '';
    const body = {host: host.value.trim(), path: path.value.trim(), backend: backend.value.trim()};
    if (options.value.trim()) {
      try {
        body.options = JSON.parse(options.value);
      } catch (e) {
        msg.textContent = 'options: not valid JSON';
        options.focus();
        return;
      }
    }
    try {
      await call('POST', '/register', body);
      toast(`Registered ${body.host}${body.path}`);
      host.value = ''; path.value = '/'; backend.value = ''; options.value = '';
      done();
    } catch (e) {
      msg.textContent = e.message;
    }
  });
  return form;
}
