package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
	"github.com/kong-service-registry/service-registry/adminsvc/client/clienttest"
)

func TestMain(m *testing.M) {
	// Re-executed as a service that registers itself (TestRegistrarSIGTERM).
	if os.Getenv("CLIENTTEST_REGISTRAR") != "" {
		os.Exit(registrarHelper())
	}
	code := m.Run()
	clienttest.Cleanup()
	os.Exit(code)
}

func registrarHelper() int {
	c, err := client.New(os.Getenv("CLIENTTEST_REGISTRY"), client.WithRetry(client.Retry{BaseDelay: 20 * time.Millisecond}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &client.Registrar{
		Client:       c,
		Routes:       []client.Registration{{Host: "sigterm.example.com", Path: "/app", Backend: "http://127.0.0.1:9000"}},
		OnRegistered: func() { fmt.Println("registered") },
	}
	if err := r.RunUntilSignal(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("deregistered")
	return 0
}

// fastRetry keeps retry tests quick while still exercising backoff.
var fastRetry = client.WithRetry(client.Retry{MaxAttempts: 4, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond})

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, append([]client.Option{fastRetry}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGoProxyCallsAgainstAdminsvc(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	ctx := clienttest.Context(t)
	c := newClient(t, reg.URL)

	r := client.Registration{Host: "api.example.com", Path: "/v2", Backend: "http://api-v2:9000",
		Options: &client.RouteOptions{Timeout: "60s", Websocket: true, Headers: map[string]string{"X-API-Version": "2.0"}}}
	res, err := c.Register(ctx, r)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if res != (client.RegisterResult{Status: "registered", Host: "api.example.com", Path: "/v2", Backend: "http://api-v2:9000"}) {
		t.Fatalf("register answer: %+v", res)
	}
	if _, err := c.Register(ctx, r); err != nil {
		t.Fatalf("registering the same route again must be a no-op: %v", err)
	}
	other := r
	other.Backend = "http://elsewhere:9000"
	_, err = c.Register(ctx, other)
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrConflict) || !errors.As(err, &apiErr) || apiErr.Message != "route already exists" {
		t.Fatalf("conflicting register: %v, want 409 route already exists", err)
	}

	list, err := c.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list.Total != 1 || len(list.Routes) != 1 || list.Routes[0].Backend != "http://api-v2:9000" || list.Routes[0].RegisteredAt.IsZero() {
		t.Fatalf("routes: %+v", list)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "healthy" || h.RegisteredRoutes != 1 {
		t.Fatalf("health: %+v %v", h, err)
	}

	if _, err := c.Deregister(ctx, "api.example.com", "/v2"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	_, err = c.Deregister(ctx, "api.example.com", "/v2")
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Message != "route not found" {
		t.Fatalf("second deregister: %v, want 404 route not found", err)
	}
}

func TestRetriesOn5xxThenSucceeds(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	proxy := clienttest.NewProxy(t, reg.URL)
	c := newClient(t, proxy.URL())
	proxy.FailNext(2, http.StatusServiceUnavailable)
	if _, err := c.Register(clienttest.Context(t), client.Registration{Host: "retry.example.com", Path: "/", Backend: "http://b:1"}); err != nil {
		t.Fatalf("register through two 503s: %v", err)
	}
	if got := proxy.Requests(); got != 3 {
		t.Fatalf("requests: %d, want 3 (two 503s, then success)", got)
	}
}

func TestGivesUpAfterMaxAttemptsOn5xx(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	proxy := clienttest.NewProxy(t, reg.URL)
	c := newClient(t, proxy.URL())
	proxy.FailNext(100, http.StatusBadGateway)
	_, err := c.Routes(clienttest.Context(t))
	if !client.IsUnavailable(err) {
		t.Fatalf("after 4 502s: %v, want ErrUnavailable", err)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
		t.Fatalf("last error: %v", err)
	}
	if got := proxy.Requests(); got != 4 {
		t.Fatalf("requests: %d, want MaxAttempts=4", got)
	}
}

func TestNeverRetries4xx(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	proxy := clienttest.NewProxy(t, reg.URL)
	c := newClient(t, proxy.URL())
	ctx := clienttest.Context(t)

	// A real 400 from adminsvc: the path does not start with "/".
	_, err := c.Register(ctx, client.Registration{Host: "bad.example.com", Path: "no-slash", Backend: "http://b:1"})
	if !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("invalid path: %v, want 400", err)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "path") {
		t.Fatalf("error should name the field: %v", err)
	}
	// A real 404.
	if _, err := c.Deregister(ctx, "none.example.com", "/x"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("deregister unknown: %v", err)
	}
	// An injected 429 is a 4xx too.
	proxy.FailNext(1, http.StatusTooManyRequests)
	if _, err := c.Routes(ctx); err == nil || client.IsUnavailable(err) {
		t.Fatalf("429: %v, want a 4xx APIError", err)
	}
	if got := proxy.Requests(); got != 3 {
		t.Fatalf("requests: %d, want 3 (one per call, no retries)", got)
	}
}

func TestRetriesConnectionRefusedUntilTheRegistryIsBack(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	proxy := clienttest.NewProxy(t, reg.URL)
	proxy.Down()
	c, err := client.New(proxy.URL(), client.WithRetry(client.Retry{MaxAttempts: 30, BaseDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Register(clienttest.Context(t), client.Registration{Host: "late.example.com", Path: "/", Backend: "http://b:1"})
		done <- err
	}()
	// Let a few attempts be refused, then bring the registry back.
	time.Sleep(300 * time.Millisecond)
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("register after the registry came back: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("register did not finish")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("finished before the registry was reachable")
	}
	if proxy.Requests() != 1 {
		t.Fatalf("requests that reached the proxy: %d, want 1", proxy.Requests())
	}
}

func TestConnectionRefusedIsUnavailable(t *testing.T) {
	port := clienttest.FreePort(t)
	c, err := client.New(fmt.Sprintf("http://127.0.0.1:%d", port), client.WithRetry(client.Retry{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Routes(context.Background())
	if !client.IsUnavailable(err) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: %v, want ErrUnavailable wrapping ECONNREFUSED", err)
	}
	// Two waits of at least 5ms and 10ms (half of 10ms and 20ms).
	if time.Since(start) < 15*time.Millisecond {
		t.Fatalf("gave up after %v: no backoff", time.Since(start))
	}
}

func TestContextEndsRetries(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	proxy := clienttest.NewProxy(t, reg.URL)
	proxy.FailNext(1000, http.StatusServiceUnavailable)
	c, err := client.New(proxy.URL(), client.WithRetry(client.Retry{MaxAttempts: 1000, BaseDelay: 50 * time.Millisecond, MaxDelay: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Routes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("returned %v after the deadline", el)
	}
}

func TestAPIKey(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{APIKeys: "k-one,k-two"})
	ctx := clienttest.Context(t)
	_, err := newClient(t, reg.URL).Routes(ctx)
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.Message != "unauthorized" {
		t.Fatalf("without key: %v, want 401 unauthorized", err)
	}
	if _, err := newClient(t, reg.URL, client.WithAPIKey("wrong")).Routes(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := newClient(t, reg.URL, client.WithAPIKey("k-two")).Routes(ctx); err != nil {
		t.Fatalf("good key: %v", err)
	}
}

func TestV1InstancesWeightsMaintenance(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	ctx := clienttest.Context(t)
	c := newClient(t, reg.URL)
	inst, err := c.PutInstance(ctx, "orders", "orders-1", client.InstanceSpec{Address: "10.0.0.1:8080", Weight: client.Int(100), Tags: []string{"v1"}})
	if err != nil {
		t.Fatalf("put instance: %v", err)
	}
	if inst.ID != "orders-1" || inst.Address != "10.0.0.1:8080" || inst.Weight != 100 {
		t.Fatalf("put answer: %+v", inst)
	}
	if _, err := c.PutInstance(ctx, "orders", "orders-2", client.InstanceSpec{Address: "10.0.0.2:8080", Weight: client.Int(0)}); err != nil {
		t.Fatal(err)
	}
	if inst, err = c.PatchWeight(ctx, "orders", "orders-2", 25); err != nil || inst.Weight != 25 {
		t.Fatalf("patch weight: %+v %v", inst, err)
	}
	svc, err := c.Service(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	weights := map[string]int{}
	for _, in := range svc.Instances {
		weights[in.ID] = in.Weight
	}
	if weights["orders-1"] != 100 || weights["orders-2"] != 25 || len(weights) != 2 {
		t.Fatalf("service instances: %+v", svc.Instances)
	}
	list, err := c.Services(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "orders" {
		t.Fatalf("services: %+v %v", list, err)
	}
	if err := c.SetMaintenance(ctx, "orders", true, "back soon"); err != nil {
		t.Fatalf("maintenance: %v", err)
	}
	if svc, err = c.Service(ctx, "orders"); err != nil || !svc.Maintenance.Enabled || svc.Maintenance.Message != "back soon" {
		t.Fatalf("after maintenance on: %+v %v", svc.Maintenance, err)
	}
	if err := c.DeleteInstance(ctx, "orders", "orders-2"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteInstance(ctx, "orders", "orders-2"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("second delete: %v, want 404", err)
	}
	if _, err := c.Service(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown service: %v, want 404", err)
	}
}

// instanceIDs lists the service's instance ids; a missing service is none.
func instanceIDs(t *testing.T, c *client.Client, service string) []string {
	t.Helper()
	svc, err := c.Service(context.Background(), service)
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range svc.Instances {
		ids = append(ids, in.ID)
	}
	return ids
}

func TestHeartbeatKeepsLeaseAndItsAbsenceExpiresIt(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	c := newClient(t, reg.URL)
	ctx, cancel := context.WithCancel(clienttest.Context(t))
	defer cancel()

	// A lease of 2s, renewed every 200ms by the Registrar: ten chances per
	// lease, so a loaded CI machine does not lose it by accident.
	registered := make(chan struct{})
	r := &client.Registrar{
		Client: c, Service: "leased", InstanceID: "kept",
		Instance:          &client.InstanceSpec{Address: "127.0.0.1:9001", TTLSeconds: 2},
		HeartbeatInterval: 200 * time.Millisecond,
		OnRegistered:      func() { close(registered) },
	}
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(ctx) }()
	<-registered

	// And one without heartbeat.
	if _, err := c.PutInstance(ctx, "leased", "lapsed", client.InstanceSpec{Address: "127.0.0.1:9002", TTLSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	// Within a few TTLs the un-renewed lease is gone...
	deadline := time.Now().Add(15 * time.Second)
	for {
		ids := instanceIDs(t, c, "leased")
		if !contains(ids, "kept") {
			t.Fatalf("the renewed instance expired: %v", ids)
		}
		if !contains(ids, "lapsed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance without heartbeat did not expire within 15s (TTL 1s): %v", ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ...while the renewed one stays for 2 more TTLs.
	until := time.Now().Add(4 * time.Second)
	for time.Now().Before(until) {
		if ids := instanceIDs(t, c, "leased"); !contains(ids, "kept") {
			t.Fatalf("the renewed instance expired: %v", ids)
		}
		time.Sleep(150 * time.Millisecond)
	}
	// Stopping the Registrar deregisters at once.
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("registrar: %v", err)
	}
	if ids := instanceIDs(t, c, "leased"); contains(ids, "kept") {
		t.Fatalf("instance still registered after the registrar stopped: %v", ids)
	}
}

func TestRegistrarSIGTERMDeregisters(t *testing.T) {
	reg := clienttest.Start(t, clienttest.Options{})
	c := newClient(t, reg.URL)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CLIENTTEST_REGISTRAR=1", "CLIENTTEST_REGISTRY="+reg.URL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "registered" {
		t.Fatalf("helper did not register: %q", lines.Text())
	}
	list, err := c.Routes(context.Background())
	if err != nil || list.Total != 1 || list.Routes[0].Host != "sigterm.example.com" {
		t.Fatalf("routes while the helper runs: %+v %v", list, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() || lines.Text() != "deregistered" {
		t.Fatalf("helper after SIGTERM: %q", lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper exit: %v", err)
	}
	if list, err := c.Routes(context.Background()); err != nil || list.Total != 0 {
		t.Fatalf("routes after SIGTERM: %+v %v", list, err)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
