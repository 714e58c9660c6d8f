package main

// The registry service of a request is resolved here and only here:
// config `service`, else the name of the Kong service the request matched.
// A Kong service's name is learned once per Kong service (serviceNames,
// globals.go), not per request.

// knownServiceName is the registry service when it is known without a
// PDK call: config `service`, or the Kong service name once resolved for a
// service-scoped plugin; "" otherwise (a global plugin resolves per
// request). The log phase uses it; the access phase goes on to ask Kong.
func (c *Config) knownServiceName() string {
	if c.Service != "" {
		return c.Service
	}
	if p := c.resolved.Load(); p != nil {
		return *p
	}
	if c.serviceID != "" {
		if v, ok := serviceNames.Load(c.serviceID); ok {
			name := v.(string)
			c.resolved.Store(&name)
			return name
		}
	}
	return ""
}

// serviceName is the registry service of this request (access phase); on
// failure it has answered the client (500) and returns false.
func (c *Config) serviceName(k kongAPI) (string, bool) {
	if name := c.knownServiceName(); name != "" {
		return name, true
	}
	id, name, err := k.RouterService() // the rate limit may have asked already: see requestRouter
	if err != nil || name == "" {
		logger().Error("service-registry: cannot resolve the registry service (set config.service)", "error", err)
		k.Exit(500, messageJSON("service-registry: invalid config: service: required when the Kong service has no name"))
		return "", false
	}
	// A global plugin (no service_id) serves many Kong services: resolve
	// per request there; scoped to one service, remember it.
	if c.serviceID != "" && (id == "" || id == c.serviceID) {
		serviceNames.Store(c.serviceID, name)
		c.resolved.Store(&name)
	}
	return name, true
}

// rememberServiceName records a Kong service's name in serviceNames (a
// rename replaces it); loaded first because a sync.Map store per request
// would allocate.
func rememberServiceName(id, name string) {
	if id == "" || name == "" {
		return
	}
	if v, known := serviceNames.Load(id); !known || v.(string) != name {
		serviceNames.Store(id, name)
	}
}

// matchedServiceID is the id of the Kong service the request matched (""
// when none), remembering its name for serviceName as it goes.
func matchedServiceID(k kongAPI) string {
	id, name, err := k.RouterService()
	if err != nil || id == "" {
		return ""
	}
	rememberServiceName(id, name)
	return id
}

// requestRouter spares a plugin without service_id a second router call in
// one request: the rate limit asks for the matched service or route (its
// identity), the registry pick for the service's name. get_service is
// asked at most once (Kong's answer cannot change within a request), and
// not at all when get_route already gave the service id and its name is
// in serviceNames.
type requestRouter struct {
	kongAPI
	asked    bool
	id, name string
	err      error
	routeSvc string // service id from get_route
}

func (r *requestRouter) RouterService() (string, string, error) {
	if !r.asked && r.routeSvc != "" {
		if v, ok := serviceNames.Load(r.routeSvc); ok {
			r.asked, r.id, r.name = true, r.routeSvc, v.(string)
		}
	}
	if !r.asked {
		r.asked = true
		r.id, r.name, r.err = r.kongAPI.RouterService()
		if r.err == nil {
			rememberServiceName(r.id, r.name)
		}
	}
	return r.id, r.name, r.err
}

func (r *requestRouter) RouterRoute() (string, string, error) {
	id, svc, err := r.kongAPI.RouterRoute()
	if err == nil {
		r.routeSvc = svc
	}
	return id, svc, err
}
