// Console entry: sign-in, hash routing between pages, and live updates.
import {APIError, clearKey, get, setKey, signedIn, watch, whenUnauthorized} from './api.js';
import {fill} from './dom.js';
import * as overview from './overview.js';
import * as routes from './routes.js';
import * as services from './services.js';

const $ = id => document.getElementById(id);
const pages = {overview, routes, services};

// events is what this tab saw on /v1/events, newest first (the overview's
// timeline shows it next to what the registry itself dates).
const events = [];
let page = null;     // the mounted page: {refresh, unmount}
let stopWatch = null;
let refreshTimer = null;

function showLogin(msg) {
  if (stopWatch) { stopWatch(); stopWatch = null; }
  if (page) { page.unmount(); page = null; }
  fill($('view'));
  $('nav').hidden = true;
  $('live').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  document.title = 'Sign in · Service registry';
  $('apikey').focus();
}

function showApp() {
  $('login').hidden = true;
  $('nav').hidden = false;
  $('live').hidden = false;
  $('signout').hidden = false;
  startWatch();
  route();
}

async function signIn(ev) {
  ev.preventDefault();
  const key = $('apikey').value.trim();
  setKey(key);
  try {
    // Any data call proves the key; /routes is the cheapest.
    await get('/routes');
  } catch (e) {
    clearKey();
    const msg = e instanceof APIError && e.status === 401
      ? (key ? 'That key was refused.' : 'The registry API needs a key.')
      : 'Sign-in failed: ' + e.message;
    $('login-error').textContent = msg;
    $('apikey').select();
    return;
  }
  $('apikey').value = '';
  if (!location.hash || location.hash === '#' ) location.hash = '#/overview';
  showApp();
}

function startWatch() {
  if (stopWatch) return;
  stopWatch = watch({
    onChange(ch) {
      events.unshift({at: new Date(), service: ch.service, version: ch.version});
      events.length = Math.min(events.length, 50);
      scheduleRefresh(ch.service);
    },
    onState(state) {
      const el = $('live');
      el.dataset.state = state;
      el.textContent = {live: 'Live', connecting: 'Connecting…', offline: 'Offline, retrying'}[state];
    },
    onResync() { scheduleRefresh(null); },
  });
}

// scheduleRefresh coalesces a burst of changes into one reload of the page.
function scheduleRefresh(service) {
  if (!page) return;
  if (service && page.interested && !page.interested(service)) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (page) page.refresh(); }, 50);
}

function route() {
  if (!signedIn()) { showLogin(); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (page) page.unmount();
  const view = fill($('view'));
  page = pages[name].mount(view, parts.slice(1), {events});
  document.title = (view.querySelector('h1')?.textContent || name) + ' · Service registry';
}

whenUnauthorized(() => {
  clearKey();
  showLogin('The API refused the key (401). Sign in again.');
});

window.addEventListener('hashchange', () => {
  route();
  // Move focus to the new page for keyboard and screen-reader users.
  const h1 = $('view').querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({preventScroll: true}); }
});
$('login-form').addEventListener('submit', signIn);
$('signout').addEventListener('click', () => { clearKey(); showLogin('Signed out.'); });

if (signedIn()) showApp(); else showLogin();
