package main

import (
	"regexp"
	"strconv"
	"strings"
)

// Kong's own answer when its router matches nothing: runloop/handler.lua
// calls kong.response.error(404, "no Route matched with those values"),
// which negotiates the format from Accept (kong/tools/utils.lua in 3.4,
// tools/http.lua in 3.9: get_response_type, get_error_template) and, from
// Kong 3.5 on, puts the request id in the body. The plugin protocol has no
// kong.response.error (pluginsocket.proto, 3.4 and 3.9), so the fast path
// builds the same page and answers it with kong.response.exit, which adds
// Kong's headers as for Kong's own page (fastpath-facts (a): byte-identical
// but for the latency header and the request id).

const noRouteMessage = "no Route matched with those values"

const (
	mimeJSON  = "application/json; charset=utf-8"
	mimeHTML  = "text/html; charset=utf-8"
	mimePlain = "text/plain; charset=utf-8"
	mimeXML   = "application/xml; charset=utf-8"
)

// kongMimeTypes is Kong's MIME_TYPES: full types, and the bare type for
// "type/*".
var kongMimeTypes = map[string]string{
	"text/html": mimeHTML, "application/json": mimeJSON, "text/plain": mimePlain, "application/xml": mimeXML,
	"application": mimeJSON, "text": mimePlain,
}

// acceptRange is get_response_type's pattern (flags "ajoxi": anchored,
// extended, case-insensitive): a media range, then parameters with q.
var acceptRange = regexp.MustCompile(`(?i)^((?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*)/(?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*))` +
	`(?:\s*;\s*q=(1(?:\.0{0,3}|)|0(?:\.\d{0,3}|))|\s*;\s*[a-z0-9][a-z0-9\-!#$&^_+.]+(?:=[^;]*|))*`)

// responseType is get_response_type: the first media range with the
// highest q decides, JSON when none.
func responseType(accept string) string {
	ct, best := mimeJSON, 0.0
	if accept == "" {
		return ct
	}
	for _, v := range strings.Split(accept, ",") {
		m := acceptRange.FindStringSubmatch(strings.TrimSpace(v))
		if m == nil {
			continue
		}
		q := 1.0
		if m[2] != "" {
			q, _ = strconv.ParseFloat(m[2], 64)
		}
		if q > best {
			best, ct = q, mimeFor(m[1])
		}
	}
	return ct
}

// mimeFor is get_mime_type with its JSON default.
func mimeFor(media string) string {
	typ, sub, ok := strings.Cut(strings.TrimSpace(media), "/")
	var mt string
	switch {
	case !ok:
	case sub == "*" && typ == "*":
		mt = mimeJSON
	case sub == "*":
		mt = kongMimeTypes[typ]
	default:
		mt = kongMimeTypes[typ+"/"+sub]
	}
	if mt == "" {
		return mimeJSON
	}
	return mt
}

// errorPage is Kong's error template for mime filled with msg, with the
// request id when Kong has one (3.5+; "" on 3.4).
func errorPage(mime, msg, requestID string) string {
	var b strings.Builder
	switch mime {
	case mimeHTML:
		b.WriteString("<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>" + msg + ".</p>\n")
		if requestID != "" {
			b.WriteString("    <p>request_id: " + requestID + "</p>\n")
		}
		b.WriteString("  </body>\n</html>\n")
	case mimePlain:
		b.WriteString(msg + "\n")
		if requestID != "" {
			b.WriteString("request_id: " + requestID + "\n")
		}
	case mimeXML:
		b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>" + msg + "</message>\n")
		if requestID != "" {
			b.WriteString("  <requestid>" + requestID + "</requestid>\n")
		}
		b.WriteString("</error>\n")
	default:
		b.WriteString("{\n  \"message\":\"" + msg + "\"")
		if requestID != "" {
			b.WriteString(",\n  \"request_id\":\"" + requestID + "\"")
		}
		b.WriteString("\n}")
	}
	return b.String()
}

// noRoute answers Kong's 404 for a request no route matches: 2 PDK calls
// before the exit (Accept; the request id, "" on Kong 3.4).
func noRoute(k kongAPI) outcome {
	accept, _ := k.RequestHeader("accept")
	mime := responseType(accept)
	id, _ := k.NginxVar("kong_request_id")
	k.ExitHeaders(404, []byte(errorPage(mime, noRouteMessage, id)), map[string][]string{"Content-Type": {mime}})
	return outNoRoute
}
