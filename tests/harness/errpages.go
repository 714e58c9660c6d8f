package harness

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kong's own error pages and response headers, per version, as a real Kong
// 3.4.2 and 3.9.3 answered them (tests/realkong TestHarnessAgreesWithKong,
// tests/KONG-NOTES.md) and as kong/tools/http.lua (3.9; tools/utils.lua in
// 3.4), kong/pdk/response.lua, kong/error_handlers.lua and the runloop's
// header_filter write them.

// kong34 reports whether the harness plays Kong 3.4: no request ids (no
// X-Kong-Request-Id, none in error bodies) and Via without the protocol.
func (k *Kong) kong34() bool { return strings.HasPrefix(k.opts.Version, "3.4.") }

const (
	mimeJSON  = "application/json; charset=utf-8"
	mimeHTML  = "text/html; charset=utf-8"
	mimePlain = "text/plain; charset=utf-8"
	mimeXML   = "application/xml; charset=utf-8"
)

// mimeTypes is tools/http.lua's MIME_TYPES ("default" and the bare types
// of "type/*").
var mimeTypes = map[string]string{
	"text/html": mimeHTML, "application/json": mimeJSON, "text/plain": mimePlain, "application/xml": mimeXML,
	"application": mimeJSON, "text": mimePlain,
}

// acceptValue is get_response_type's pattern ("ajoxi": anchored, extended,
// case-insensitive): a media range, then parameters, q among them.
var acceptValue = regexp.MustCompile(`(?i)^((?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*)/(?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*))` +
	`(?:\s*;\s*q=(1(?:\.0{0,3}|)|0(?:\.\d{0,3}|))|\s*;\s*[a-z0-9][a-z0-9\-!#$&^_+.]+(?:=[^;]*|))*`)

// responseType is get_response_type: the media range with the highest q
// (the first of equals) mapped by get_mime_type; JSON by default.
func responseType(accept string) string {
	ct, best := mimeJSON, 0.0
	for _, v := range strings.Split(accept, ",") {
		m := acceptValue.FindStringSubmatch(strings.TrimSpace(v))
		if m == nil {
			continue
		}
		q := 1.0
		if m[2] != "" {
			q, _ = strconv.ParseFloat(m[2], 64)
		}
		if q > best {
			best, ct = q, mimeType(m[1])
		}
	}
	return ct
}

// mimeType is get_mime_type with its default (JSON).
func mimeType(media string) string {
	media = strings.TrimSpace(strings.Split(media, ";")[0])
	typ, sub, ok := strings.Cut(media, "/")
	var mt string
	switch {
	case !ok:
	case sub == "*" && typ == "*":
		mt = mimeJSON
	case sub == "*":
		mt = mimeTypes[typ]
	default:
		mt = mimeTypes[media]
	}
	if mt == "" {
		return mimeJSON
	}
	return mt
}

// errorBody is get_error_template(mime) filled with the message (and, from
// Kong 3.5 on, the request id).
func (k *Kong) errorBody(mime, msg, requestID string) string {
	if k.kong34() {
		switch mime {
		case mimeHTML:
			return "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>" + msg + ".</p>\n  </body>\n</html>\n"
		case mimePlain:
			return msg + "\n"
		case mimeXML:
			return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>" + msg + "</message>\n</error>\n"
		}
		return fmt.Sprintf("{\n  \"message\":\"%s\"\n}", msg)
	}
	switch mime {
	case mimeHTML:
		return "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>" + msg + ".</p>\n    <p>request_id: " + requestID + "</p>\n  </body>\n</html>\n"
	case mimePlain:
		return msg + "\nrequest_id: " + requestID + "\n"
	case mimeXML:
		return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>" + msg + "</message>\n  <requestid>" + requestID + "</requestid>\n</error>\n"
	}
	return fmt.Sprintf("{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}", msg, requestID)
}

// kongHeaders adds the headers Kong puts on responses it makes itself
// (header_filter, not proxied).
func (k *Kong) kongHeaders(rc *reqCtx, h http.Header) {
	h.Set("Server", "kong/"+k.opts.Version)
	h.Set("X-Kong-Response-Latency", strconv.FormatInt(time.Since(rc.start).Milliseconds(), 10))
	if !k.kong34() {
		h.Set("X-Kong-Request-Id", rc.requestID)
	}
}

// proxiedHeaders adds what header_filter puts on a proxied response: the
// latencies and Via; 3.9 also Server when the upstream sent none, and the
// request id. An error page for a failed upstream counts as proxied.
func (k *Kong) proxiedHeaders(rc *reqCtx, h http.Header) {
	h.Set("X-Kong-Upstream-Latency", strconv.FormatInt(rc.upstreamLat, 10))
	h.Set("X-Kong-Proxy-Latency", strconv.FormatInt(rc.proxyLat, 10))
	if k.kong34() {
		h.Set("Via", "kong/"+k.opts.Version)
		return
	}
	via := "1.1 kong/" + k.opts.Version
	if prior := h.Get("Via"); prior != "" {
		via = prior + ", " + via
	}
	h.Set("Via", via)
	if h.Get("Server") == "" {
		h.Set("Server", "kong/"+k.opts.Version)
	}
	h.Set("X-Kong-Request-Id", rc.requestID)
}

// kongError is kong.response.error: the template negotiated from Accept
// (JSON without one).
func (k *Kong) kongError(rc *reqCtx, w http.ResponseWriter, status int, msg string) http.Header {
	mime := responseType(rc.req.Header.Get("Accept"))
	body := k.errorBody(mime, msg, rc.requestID)
	h := w.Header()
	rc.applyAccessHeaders(h)
	h.Set("Content-Type", mime)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	k.kongHeaders(rc, h)
	rc.status = status
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return h.Clone()
}

// upstreamError is error_handlers.lua answering nginx's error_page for a
// failed upstream: the format from Accept, else the request's
// Content-Type, else error_default_type (text/plain); the proxied headers.
// Kong 3.4 leaves nginx's own Server header on it ("openresty" in Kong's
// images; "nginx" in ../shared/realkong's build).
func (k *Kong) upstreamError(rc *reqCtx, w http.ResponseWriter, status int, msg string) http.Header {
	accept := rc.req.Header.Get("Accept")
	if accept == "" {
		accept = rc.req.Header.Get("Content-Type")
	}
	if accept == "" {
		accept = "text/plain"
	}
	mime := responseType(accept)
	body := k.errorBody(mime, msg, rc.requestID)
	h := w.Header()
	rc.applyAccessHeaders(h)
	h.Set("Content-Type", mime)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if k.kong34() {
		h.Set("Server", "openresty")
	}
	k.proxiedHeaders(rc, h)
	rc.status = status
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return h.Clone()
}
