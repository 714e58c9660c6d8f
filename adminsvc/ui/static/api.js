// The console talks to the public registry API only, with the key the
// operator typed (sessionStorage: this tab, this session; never the server).

const KEY = 'sr.apiKey';

// base is where the API lives: the path before /ui/, so the console works
// behind a proxy that mounts adminsvc under a prefix.
const base = location.pathname.replace(/\/ui\/.*$/, '');

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function signedIn() { return sessionStorage.getItem(KEY) !== null; }
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function clearKey() { sessionStorage.removeItem(KEY); }

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function headers(extra) {
  const hs = {Accept: 'application/json', ...extra};
  const k = sessionStorage.getItem(KEY);
  if (k) hs['X-API-Key'] = k;
  return hs;
}

// call sends one request and returns the decoded body; a non-2xx answer is
// an APIError carrying the API's {"error": ...} message. allow lists
// statuses whose body is returned anyway (/health answers 503 with a body).
export async function call(method, path, body, allow = []) {
  const init = {method, headers: headers(body === undefined ? {} : {'Content-Type': 'application/json'}), cache: 'no-store'};
  if (body !== undefined) init.body = JSON.stringify(body);
  let r;
  try {
    r = await fetch(base + path, init);
  } catch (e) {
    throw new APIError(0, 'registry API unreachable');
  }
  let data = null;
  try { data = await r.json(); } catch (e) { /* no JSON body */ }
  if (r.ok || allow.includes(r.status)) return data;
  if (r.status === 401) onUnauthorized();
  throw new APIError(r.status, (data && data.error) || ('HTTP ' + r.status));
}

export const get = (path, allow) => call('GET', path, undefined, allow);
export const enc = encodeURIComponent;

// watch reads /v1/events (server-sent events) with fetch, because
// EventSource cannot send the API key header. It calls onChange for each
// change and onState('live' | 'connecting' | 'offline'); it reconnects
// with backoff and calls onResync after every reconnect (changes may have
// been missed while disconnected). It returns a function that stops it.
export function watch({onChange, onState, onResync}) {
  let stopped = false;
  let ctrl = null;
  let delay = 500;
  async function once() {
    ctrl = new AbortController();
    onState('connecting');
    const r = await fetch(base + '/v1/events', {headers: headers({Accept: 'text/event-stream'}), signal: ctrl.signal, cache: 'no-store'});
    if (r.status === 401) { onUnauthorized(); stopped = true; return; }
    if (!r.ok || !r.body) throw new Error('events: HTTP ' + r.status);
    onState('live');
    delay = 500;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = parseEvent(block);
        if (ev && ev.event === 'change') onChange(ev.data);
      }
    }
  }
  (async () => {
    let first = true;
    while (!stopped) {
      try {
        if (!first) onResync();
        first = false;
        await once();
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('offline');
      await new Promise(res => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => { stopped = true; if (ctrl) ctrl.abort(); };
}

function parseEvent(block) {
  const ev = {event: 'message', data: ''};
  let any = false;
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const j = line.indexOf(':');
    const field = j < 0 ? line : line.slice(0, j);
    let val = j < 0 ? '' : line.slice(j + 1);
    if (val.startsWith(' ')) val = val.slice(1);
    if (field === 'event') ev.event = val;
    else if (field === 'data') { ev.data += (any ? '\n' : '') + val; any = true; }
  }
  if (!any) return null;
  try { ev.data = JSON.parse(ev.data); } catch (e) { return null; }
  return ev;
}
