package harness

import (
	"regexp"
	"strings"

	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// protoMethod is one entry of pb_rpc.lua's rpc_service table.
type protoMethod struct {
	Name   string // "Kong.Request_GetPath"
	Input  protoreflect.FullName
	Output protoreflect.FullName
}

var camelBoundary = regexp.MustCompile(`([a-z][0-9]*)([A-Z])`)

// luaMethodName is load_service's name mapping:
//
//	m.options.MethodName or method_name:gsub('_', '.'):gsub('([a-z]%d*)([A-Z])', '%1_%2'):lower()
func luaMethodName(service, method string, opts *descriptorpb.MethodOptions) string {
	if opts != nil && proto.HasExtension(opts, pb.E_MethodName) {
		if n, _ := proto.GetExtension(opts, pb.E_MethodName).(string); n != "" {
			return n
		}
	}
	full := strings.ReplaceAll(service+"."+method, "_", ".")
	return strings.ToLower(camelBoundary.ReplaceAllString(full, "${1}_${2}"))
}

// protoMethods lists every method Kong's proto declares, by Lua name, from the
// descriptor go-pdk ships (the same pluginsocket.proto as Kong 3.9).
func protoMethods() map[string]protoMethod {
	out := map[string]protoMethod{}
	fd := pb.File_server_kong_plugin_protocol_pluginsocket_proto
	svcs := fd.Services()
	for i := 0; i < svcs.Len(); i++ {
		s := svcs.Get(i)
		ms := s.Methods()
		for j := 0; j < ms.Len(); j++ {
			m := ms.Get(j)
			opts, _ := m.Options().(*descriptorpb.MethodOptions)
			name := luaMethodName(string(s.Name()), string(m.Name()), opts)
			out[name] = protoMethod{
				Name:   string(s.Name()) + "." + string(m.Name()),
				Input:  m.Input().FullName(),
				Output: m.Output().FullName(),
			}
		}
	}
	return out
}
