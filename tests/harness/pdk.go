package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"

	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// luaError is an error raised inside a PDK function. Kong does not answer the
// call: the phase handler dies with it (500 in access; the timer aborts in log).
type luaError struct{ msg string }

func (e *luaError) Error() string { return e.msg }

// errUnimplemented marks a PDK method declared in Kong's proto that the harness
// does not implement: the test fails loudly instead of guessing.
var errUnimplemented = errors.New("PDK method not implemented by the harness")

// errDisabled is what the log timer gets for data Kong did not save.
const errDisabled = "API disabled in the current context"

type pdkFunc func(rc *reqCtx, arg []byte) (proto.Message, error)

// logPhaseAPI lists what works in the log timer: the exposed_api entries of
// plugin.lua that read the saved request data, plus logging and node getters
// that need no request, plus kong.nginx.get_var (observed working, KONG-FACTS).
var logPhaseAPI = map[string]bool{
	"kong.log.serialize": true, "kong.nginx.get_var": true,
	"kong.nginx.get_ctx": true, "kong.nginx.set_ctx": true,
	"kong.ctx.shared.get": true, "kong.ctx.shared.set": true,
	"kong.request.get_headers": true, "kong.request.get_header": true,
	"kong.response.get_status": true, "kong.response.get_headers": true,
	"kong.response.get_header": true, "kong.response.get_source": true,
	"kong.nginx.req_start_time": true, "kong.nginx.get_subsystem": true,
	"kong.node.get_id": true,
	"kong.log.alert":   true, "kong.log.crit": true, "kong.log.err": true, "kong.log.warn": true,
	"kong.log.notice": true, "kong.log.info": true, "kong.log.debug": true,
}

func str(s string) *pb.String { return &pb.String{V: s} }

func decode[T proto.Message](arg []byte, m T) (T, error) {
	if err := proto.Unmarshal(arg, m); err != nil {
		return m, fmt.Errorf("decoding PDK argument: %w", err)
	}
	return m, nil
}

// headerValue turns a header value from the plugin (string, number, list) into
// strings, as normalize_multi_header / validate_header accept them.
func headerValue(v *structpb.Value) ([]string, error) {
	switch x := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return []string{x.StringValue}, nil
	case *structpb.Value_NumberValue:
		return []string{luaNumber(x.NumberValue)}, nil
	case *structpb.Value_BoolValue:
		return []string{strconv.FormatBool(x.BoolValue)}, nil
	case *structpb.Value_ListValue:
		var out []string
		for _, e := range x.ListValue.GetValues() {
			s, err := headerValue(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	}
	return nil, &luaError{msg: "invalid header value: got nil, expected string, number or boolean"}
}

func luaNumber(n float64) string {
	if n == math.Trunc(n) && math.Abs(n) < 1e15 {
		return strconv.FormatInt(int64(n), 10)
	}
	return strconv.FormatFloat(n, 'g', 14, 64)
}

// headersStruct is ngx.req.get_headers: lowercase names, a string for one
// value, a list for several, at most max names.
func headersStruct(h http.Header, max int) (*structpb.Struct, error) {
	m := map[string]any{}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if len(m) >= max {
			break
		}
		vs := h[k]
		if len(vs) == 1 {
			m[strings.ToLower(k)] = vs[0]
		} else {
			l := make([]any, len(vs))
			for i, v := range vs {
				l[i] = v
			}
			m[strings.ToLower(k)] = l
		}
	}
	return structpb.NewStruct(m)
}

func maxHeaders(arg []byte) (int, error) {
	in, err := decode(arg, &pb.Int{})
	if err != nil {
		return 0, err
	}
	switch {
	case in.V == 0:
		// proto3 cannot tell 0 from absent; Kong then behaves as for nil.
		return 100, nil
	case in.V < 1:
		return 0, &luaError{msg: "max_headers must be >= 1"}
	case in.V > 1000:
		return 0, &luaError{msg: "max_headers must be <= 1000"}
	}
	return int(in.V), nil
}

// headerName is http_get_header's lookup: case-insensitive, "_" as "-".
func headerName(name string) string {
	return textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

var pdkMethods = map[string]pdkFunc{
	// kong.request
	"kong.request.get_scheme": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str("http"), nil },
	"kong.request.get_host":   func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.host()), nil },
	"kong.request.get_port": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Int{V: int32(rc.serverPort)}, nil
	},
	"kong.request.get_forwarded_scheme": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str("http"), nil },
	"kong.request.get_forwarded_host":   func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.host()), nil },
	"kong.request.get_forwarded_port": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Int{V: int32(rc.serverPort)}, nil
	},
	"kong.request.get_http_version": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Number{V: float64(rc.req.ProtoMajor) + float64(rc.req.ProtoMinor)/10}, nil
	},
	"kong.request.get_method": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.req.Method), nil },
	"kong.request.get_path": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return str(rc.path()), nil
	},
	"kong.request.get_path_with_query": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return str(rc.req.URL.RequestURI()), nil
	},
	"kong.request.get_raw_query": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.req.URL.RawQuery), nil },
	"kong.request.get_query_arg": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		return str(rc.req.URL.Query().Get(in.V)), nil
	},
	"kong.request.get_header":  getHeader(requestHeaders),
	"kong.request.get_headers": getHeaders(requestHeaders),

	// kong.client
	"kong.client.get_ip":           func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.clientIP), nil },
	"kong.client.get_forwarded_ip": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.clientIP), nil },
	"kong.client.get_port": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Int{V: int32(rc.clientPort)}, nil
	},
	"kong.client.get_forwarded_port": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Int{V: int32(rc.clientPort)}, nil
	},
	"kong.client.get_protocol": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str("http"), nil },
	// No authentication plugin runs in the harness: no consumer, no credential.
	"kong.client.get_consumer":   func(rc *reqCtx, _ []byte) (proto.Message, error) { return nil, nil },
	"kong.client.get_credential": func(rc *reqCtx, _ []byte) (proto.Message, error) { return nil, nil },
	// trusted_ips is empty by default: nothing is trusted.
	"kong.ip.is_trusted": func(rc *reqCtx, _ []byte) (proto.Message, error) { return &pb.Bool{V: false}, nil },

	// kong.ctx.shared
	"kong.ctx.shared.set": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.KV{})
		if err != nil {
			return nil, err
		}
		rc.sharedMu.Lock()
		rc.shared[in.K] = in.V.AsInterface()
		rc.sharedMu.Unlock()
		return nil, nil
	},
	"kong.ctx.shared.get": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		rc.sharedMu.Lock()
		v := rc.shared[in.V]
		rc.sharedMu.Unlock()
		return structpb.NewValue(v)
	},

	// kong.nginx
	"kong.nginx.get_subsystem": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str("http"), nil },
	"kong.nginx.req_start_time": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		return &pb.Number{V: float64(rc.start.UnixMilli()) / 1000}, nil
	},
	"kong.nginx.get_var": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		v, ok := rc.ngxVar(in.V)
		if !ok {
			return nil, nil
		}
		return str(v), nil
	},
	"kong.nginx.get_ctx": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		rc.sharedMu.Lock()
		v := rc.ngxCtx[in.V]
		rc.sharedMu.Unlock()
		return structpb.NewValue(v)
	},
	"kong.nginx.set_ctx": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.KV{})
		if err != nil {
			return nil, err
		}
		rc.sharedMu.Lock()
		rc.ngxCtx[in.K] = in.V.AsInterface()
		rc.sharedMu.Unlock()
		return nil, nil
	},
	"kong.node.get_id": func(rc *reqCtx, _ []byte) (proto.Message, error) { return str(rc.k.nodeID), nil },

	// kong.log
	"kong.log.alert":  logAt("alert"),
	"kong.log.crit":   logAt("crit"),
	"kong.log.err":    logAt("err"),
	"kong.log.warn":   logAt("warn"),
	"kong.log.notice": logAt("notice"),
	"kong.log.info":   logAt("info"),
	"kong.log.debug":  logAt("debug"),
	"kong.log.serialize": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		if rc.saved == nil {
			return nil, &luaError{msg: "function cannot be called in access phase (only in: log)"}
		}
		return str(string(rc.saved.serialize)), nil
	},

	// kong.response
	"kong.response.get_status": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		if rc.saved == nil {
			return nil, &luaError{msg: "function cannot be called in access phase (only in: header_filter, response, body_filter, log, admin_api)"}
		}
		return &pb.Int{V: int32(rc.saved.responseStatus)}, nil
	},
	"kong.response.get_source": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		if rc.saved == nil {
			return nil, &luaError{msg: "function cannot be called in access phase (only in: header_filter, response, body_filter, log, admin_api)"}
		}
		return str(rc.saved.source), nil
	},
	"kong.response.get_header":  getHeader(responseHeaders),
	"kong.response.get_headers": getHeaders(responseHeaders),
	"kong.response.set_header": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.KV{})
		if err != nil {
			return nil, err
		}
		vs, err := headerValue(in.V)
		if err != nil {
			return nil, err
		}
		rc.respHeaders[headerName(in.K)] = vs
		return nil, nil
	},
	"kong.response.add_header": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.KV{})
		if err != nil {
			return nil, err
		}
		vs, err := headerValue(in.V)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			rc.respHeaders.Add(in.K, v)
		}
		return nil, nil
	},
	"kong.response.clear_header": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		rc.respHeaders.Del(in.V)
		rc.clearedResp = append(rc.clearedResp, headerName(in.V))
		return nil, nil
	},
	"kong.response.set_headers": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &structpb.Struct{})
		if err != nil {
			return nil, err
		}
		for k, v := range in.GetFields() {
			vs, err := headerValue(v)
			if err != nil {
				return nil, err
			}
			rc.respHeaders[headerName(k)] = vs
		}
		return nil, nil
	},
	"kong.response.exit": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.ExitArgs{})
		if err != nil {
			return nil, err
		}
		ex := &exitInfo{status: int(in.Status), body: in.Body, headers: http.Header{}}
		for k, v := range in.GetHeaders().GetFields() {
			vs, err := headerValue(v)
			if err != nil {
				return nil, err
			}
			ex.headers[headerName(k)] = vs
		}
		rc.exit = ex
		return nil, errExit
	},

	// kong.router
	"kong.router.get_route": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		r := rc.route
		return &pb.Route{
			Id: r.ID, Name: r.Name, Protocols: r.Protocols, Methods: r.Methods, Hosts: r.Hosts,
			Paths: r.Paths, StripPath: r.stripPath(), PreserveHost: r.PreserveHost,
			RegexPriority: 0, HttpsRedirectStatusCode: 426, Tags: r.Tags,
			Service: &pb.ServiceKey{Id: rc.service.ID},
		}, nil
	},
	"kong.router.get_service": func(rc *reqCtx, _ []byte) (proto.Message, error) {
		s := rc.service
		return &pb.Service{
			Id: s.ID, Name: s.Name, Retries: int32(s.retries()), Protocol: s.protocol(),
			Host: s.Host, Port: int32(s.port()), Path: s.Path,
			ConnectTimeout: int32(s.ConnectTimeout), WriteTimeout: int32(s.WriteTimeout),
			ReadTimeout: int32(s.ReadTimeout), Tags: s.Tags,
		}, nil
	},

	// kong.service
	"kong.service.set_target": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.Target{})
		if err != nil {
			return nil, err
		}
		// pdk/service.lua set_target
		if in.Port < 0 || in.Port > 65535 {
			return nil, &luaError{msg: fmt.Sprintf("port must be an integer between 0 and 65535: given %d", in.Port)}
		}
		rc.target = &hostPort{host: in.Host, port: int(in.Port)}
		// ngx.var.upstream_host = host: the target host becomes the
		// upstream Host, over a route's preserve_host and over an earlier
		// set_header("host"), and a later set_header("host") wins over it
		// (one variable, last write wins): queued in order with them.
		rc.upstreamHeaderOps = append(rc.upstreamHeaderOps, headerOp{op: "set", name: "host", values: []string{in.Host}})
		return nil, nil
	},
	"kong.service.set_upstream": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		if rc.k.upstreamByName(in.V) == nil {
			// Lua returns nil, err: wrapped as Bool{v = nil}.
			return &pb.Bool{}, nil
		}
		rc.upstreamOverride = in.V
		return &pb.Bool{V: true}, nil
	},
	"kong.service.request.set_header": upstreamHeader("set"),
	"kong.service.request.add_header": upstreamHeader("add"),
	"kong.service.request.clear_header": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		rc.upstreamHeaderOps = append(rc.upstreamHeaderOps, headerOp{op: "clear", name: in.V})
		return nil, nil
	},
	"kong.service.request.set_headers": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &structpb.Struct{})
		if err != nil {
			return nil, err
		}
		for k, v := range in.GetFields() {
			vs, err := headerValue(v)
			if err != nil {
				return nil, err
			}
			rc.upstreamHeaderOps = append(rc.upstreamHeaderOps, headerOp{op: "set", name: k, values: vs})
		}
		return nil, nil
	},
	"kong.service.request.set_path": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(in.V, "/") {
			return nil, &luaError{msg: "path must start with /"}
		}
		// pdk/service/request.lua: ngx.var.upstream_uri = escape(path)
		p := kongEscape(in.V)
		rc.upstreamPath = &p
		return nil, nil
	},
	"kong.service.request.set_scheme": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		// pdk/service/request.lua set_scheme
		if in.V != "http" && in.V != "https" {
			return nil, &luaError{msg: "invalid scheme: " + in.V}
		}
		rc.upstreamScheme = in.V
		return nil, nil
	},
	"kong.service.request.set_raw_query": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		q := in.V
		rc.upstreamQuery = &q
		return nil, nil
	},
	"kong.service.request.set_method": func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		rc.upstreamMethod = in.V
		return nil, nil
	},
}

func logAt(level string) pdkFunc {
	return func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &structpb.ListValue{})
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for _, v := range in.GetValues() {
			switch x := v.GetKind().(type) {
			case *structpb.Value_StringValue:
				b.WriteString(x.StringValue)
			case *structpb.Value_NumberValue:
				b.WriteString(luaNumber(x.NumberValue))
			default:
				j, _ := json.Marshal(v.AsInterface())
				b.Write(j)
			}
		}
		rc.k.logLine(fmt.Sprintf("[kong] %s [%s] %s", level, rc.k.plugin.Name, b.String()))
		return nil, nil
	}
}

// dispatch answers one PDK call as call_pdk does, and counts it.
func (rc *reqCtx) dispatch(method string, arg []byte) ([]byte, error) {
	rc.stats.addCall(rc.phase, method)
	rc.k.totalCalls.Add(1)
	if _, ok := rc.k.methods[method]; !ok {
		// call_pdk: ("method %q not found"):format(method_name)
		return nil, &rpcError{msg: fmt.Sprintf("method %q not found", method)}
	}
	if rc.phase == "log" && !logPhaseAPI[method] {
		rc.stats.addError(method + ": " + errDisabled)
		rc.k.logLine(fmt.Sprintf("[kong] err [%s] %s: %s", rc.k.plugin.Name, method, errDisabled))
		return nil, &luaError{msg: errDisabled}
	}
	fn, ok := pdkMethods[method]
	if !ok {
		rc.k.recordUnimplemented(method)
		return nil, fmt.Errorf("%w: %s", errUnimplemented, method)
	}
	out, err := fn(rc, arg)
	if err != nil {
		var le *luaError
		if errors.As(err, &le) {
			rc.stats.addError(method + ": " + le.msg)
		}
		return nil, err
	}
	if out == nil {
		return []byte{}, nil
	}
	if _, ok := out.(*emptypb.Empty); ok {
		return []byte{}, nil
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding reply to %s: %w", method, err)
	}
	return b, nil
}

func withHost(h http.Header, host string) http.Header {
	c := h.Clone()
	if c == nil {
		c = http.Header{}
	}
	// Go moves Host out of the header map; nginx keeps it as a request header.
	if host != "" {
		c.Set("Host", host)
	}
	return c
}

// requestHeaders and responseHeaders are what the header getters read: the
// live headers during access, the copies Kong saved once the log phase runs.
func requestHeaders(rc *reqCtx) http.Header {
	if rc.saved != nil {
		return rc.saved.requestHeaders
	}
	return rc.reqHeaders
}

func responseHeaders(rc *reqCtx) http.Header {
	if rc.saved != nil {
		return rc.saved.responseHeaders
	}
	return rc.respHeaders
}

// getHeader is kong.request/response.get_header: the first value or nil.
func getHeader(headers func(*reqCtx) http.Header) func(*reqCtx, []byte) (proto.Message, error) {
	return func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.String{})
		if err != nil {
			return nil, err
		}
		if vs := headers(rc).Values(headerName(in.V)); len(vs) > 0 {
			return str(vs[0]), nil
		}
		return nil, nil
	}
}

// getHeaders is kong.request/response.get_headers(max_headers).
func getHeaders(headers func(*reqCtx) http.Header) func(*reqCtx, []byte) (proto.Message, error) {
	return func(rc *reqCtx, arg []byte) (proto.Message, error) {
		max, err := maxHeaders(arg)
		if err != nil {
			return nil, err
		}
		return headersStruct(headers(rc), max)
	}
}

// upstreamHeader is kong.service.request.set_header / add_header: the
// operation is queued and applied to the proxied request in order.
func upstreamHeader(op string) func(*reqCtx, []byte) (proto.Message, error) {
	return func(rc *reqCtx, arg []byte) (proto.Message, error) {
		in, err := decode(arg, &pb.KV{})
		if err != nil {
			return nil, err
		}
		vs, err := headerValue(in.V)
		if err != nil {
			return nil, err
		}
		rc.upstreamHeaderOps = append(rc.upstreamHeaderOps, headerOp{op: op, name: in.K, values: vs})
		return nil, nil
	}
}
