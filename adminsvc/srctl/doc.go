// Command srctl is the registry's command line: it registers and
// deregisters routes (from flags or a Microkubes-style JSON service config),
// lists routes and services, renews leases, and can run as a registrar that
// keeps a service registered until SIGTERM (systemd, sidecars, init
// containers).
//
// It is a thin shell over package client: every API call, retry and error
// mapping lives there. It must not talk to Kong or Redis directly.
//
// Exit codes (stable; scripts rely on them):
//
//	0  success
//	1  usage: bad flags, missing arguments, unreadable or invalid config file
//	2  the registry refused the request (4xx: conflict, not found, invalid, unauthorized)
//	3  the registry is unavailable (connection error, timeout, 5xx) or unhealthy
package main
