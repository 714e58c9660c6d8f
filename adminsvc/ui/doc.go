// Package ui is adminsvc's web console: a few static files (plain HTML, CSS
// and JavaScript, no build step, no CDN) embedded in the binary and served
// under /ui/.
//
// The console is a client of the public API only: every call it makes
// (/routes, /register, /deregister, /health, /v1/...) is one a script can
// make, with the API key the operator types once into the page and sent as
// X-API-Key. The key lives in the tab's sessionStorage; nothing about the
// console is stored server-side. The assets themselves hold no data and are
// served without a key.
package ui
