package main

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/kong-service-registry/service-registry/internal/discovery"
)

// try is one entry of kong.log.serialize()'s tries[].
type try struct {
	IP    string `json:"ip"`
	Port  int    `json:"port"`
	State string `json:"state"`
	Code  int    `json:"code"`
}

// recordOutcome feeds the breaker the outcome of every try of the request
// (Kong retries go to the same target; each try is a call). No tries: the
// request never reached a backend (answered in access), nothing to record.
func (c *Config) recordOutcome(cp *compiled, k kongAPI) {
	if doc, ok := readLogDoc(k); ok {
		c.record(cp, doc)
	}
}

// logDoc is what the breaker reads of kong.log.serialize(): raw JSON of
// four top-level values, nil when absent.
type logDoc struct {
	tries, response, source, service []byte
}

// readLogDoc asks Kong for the serialized request (one PDK call).
func readLogDoc(k kongAPI) (logDoc, bool) {
	s, err := k.Serialize()
	if err != nil {
		logThrottled("serialize", "service-registry: kong.log.serialize failed", "error", err)
		return logDoc{}, false
	}
	// The document is mostly headers: decode only the top-level values the
	// breaker reads (a full json.Unmarshal costs ~10 µs).
	var d logDoc
	if !topLevel([]byte(s), func(key, v []byte) {
		switch string(key) { // no allocation: the compiler compares in place
		case "tries":
			d.tries = v
		case "response":
			d.response = v
		case "source":
			d.source = v
		case "service":
			d.service = v
		}
	}) {
		logThrottled("serialize-json", "service-registry: kong.log.serialize: bad JSON")
		return logDoc{}, false
	}
	return d, true
}

// record feeds cp's breaker the tries of doc.
func (c *Config) record(cp *compiled, doc logDoc) {
	if doc.tries == nil {
		return
	}
	var tries []try
	if err := json.Unmarshal(doc.tries, &tries); err != nil || len(tries) == 0 {
		return
	}
	var status int
	if doc.response != nil {
		topLevel(doc.response, func(key, v []byte) {
			if string(key) == "status" {
				_ = json.Unmarshal(v, &status)
			}
		})
	}
	var source string
	_ = json.Unmarshal(doc.source, &source)
	name := c.logServiceName(doc.service)
	b := cp.breaker.set
	st := b.Settings()
	for i, t := range tries {
		if t.IP == "" || t.Port == 0 {
			continue
		}
		code, failed := t.Code, t.State == "failed"
		if i == len(tries)-1 && code == 0 && !failed {
			// Kong sets state/code of a try only when it retries; the last
			// try's result is the response. Kong answering 5xx itself after
			// a try means the connection failed or timed out.
			code = status
			failed = source != "upstream" && code >= 500
		}
		b.Record(c.breakerAddr(cp, name, t.IP, t.Port), st.Classify(code, failed))
	}
}

// logServiceName is the registry service in the log phase, without a PDK
// call: what the config knows (servicename.go), else, for a global plugin
// serving many Kong services, the matched service's name from the
// serialize document already read (what serviceName asked the router for
// in access).
func (c *Config) logServiceName(rawService []byte) string {
	if c.Registry != "redis" {
		return ""
	}
	if name := c.knownServiceName(); name != "" || rawService == nil {
		return name
	}
	_, name := serializedService(rawService)
	return name
}

// serializedService reads the id and name of kong.log.serialize()'s
// service record ("" when absent).
func serializedService(raw []byte) (id, name string) {
	topLevel(raw, func(key, v []byte) {
		switch string(key) {
		case "id":
			_ = json.Unmarshal(v, &id)
		case "name":
			_ = json.Unmarshal(v, &name)
		}
	})
	return id, name
}

// breakerAddr is the address the picker knows for a try Kong made to
// ip:port: the registry's "host:port" when the instance was registered by
// host name (Kong resolved it; tries[] has the IP), else ip:port.
func (c *Config) breakerAddr(cp *compiled, name, ip string, port int) string {
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if c.Registry != "redis" || cp.backend == nil || name == "" {
		return addr
	}
	snap, ok := cp.backend.cache.Peek(name, time.Duration(c.CacheTTLMs)*time.Millisecond)
	if !ok {
		return addr
	}
	var named []*discovery.Target
	for i := range snap.Targets {
		t := &snap.Targets[i]
		if t.Port != port {
			continue
		}
		if t.Addr == addr || t.Host == ip {
			return t.Addr
		}
		if net.ParseIP(t.Host) == nil {
			named = append(named, t)
		}
	}
	for _, t := range named {
		if slices.Contains(hostIPs.lookup(t.Host), ip) {
			return t.Addr
		}
	}
	return addr
}
