package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

func TestRoutesPagesAndStream(t *testing.T) {
	a := newTestAPI(t, nil)
	for i := 0; i < 5; i++ {
		b := fmt.Sprintf(`{"host":"h%d.example","path":"/p","backend":"http://b:1"}`, i)
		if rec := a.do(http.MethodPost, "/register", b); rec.Code != 200 {
			t.Fatalf("register: %d %s", rec.Code, rec.Body.String())
		}
	}
	type pageBody struct {
		Routes     []routeJSON `json:"routes"`
		Total      int         `json:"total"`
		NextCursor *string     `json:"next_cursor"`
	}
	// The default (go-proxy clients) is every route and no cursor.
	rec := a.do(http.MethodGet, "/routes", "")
	var all pageBody
	if err := json.Unmarshal(rec.Body.Bytes(), &all); err != nil || rec.Code != 200 || all.Total != 5 || len(all.Routes) != 5 || all.NextCursor != nil {
		t.Fatalf("full listing: %d %s %v", rec.Code, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	var hosts []string
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		target := "/routes?limit=2"
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		rec := a.do(http.MethodGet, target, "")
		var p pageBody
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != 200 || len(p.Routes) > 2 || p.Total != len(p.Routes) {
			t.Fatalf("page: %d %s %v", rec.Code, rec.Body.String(), err)
		}
		for _, r := range p.Routes {
			hosts = append(hosts, r.Host)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if fmt.Sprint(hosts) != "[h0.example h1.example h2.example h3.example h4.example]" {
		t.Fatalf("paged hosts: %v", hosts)
	}
	wantError(t, a.do(http.MethodGet, "/routes?limit=0", ""), 400, "limit: expected an integer from 1 to 1000")
	wantError(t, a.do(http.MethodGet, "/routes?limit=x", ""), 400, "limit: expected an integer from 1 to 1000")
	wantError(t, a.do(http.MethodGet, "/routes?cursor=aDA", ""), 400, "cursor: only with limit")
	wantError(t, a.do(http.MethodGet, "/routes?limit=1&cursor=!!", ""), 400, "cursor: invalid (pass next_cursor from the previous page)")
}

func TestServicesPages(t *testing.T) {
	a := newTestAPI(t, nil)
	for i := 0; i < 3; i++ {
		if rec := a.do(http.MethodPut, fmt.Sprintf("/v1/services/s%d/instances/a", i), `{"address":"10.0.0.1:80"}`); rec.Code != 200 {
			t.Fatalf("put: %d %s", rec.Code, rec.Body.String())
		}
	}
	rec := a.do(http.MethodGet, "/v1/services?limit=2", "")
	got := decode(t, rec)
	if rec.Code != 200 || got["total"] != 2.0 || got["next_cursor"] == nil {
		t.Fatalf("first page: %d %v", rec.Code, got)
	}
	rec = a.do(http.MethodGet, "/v1/services?limit=2&cursor="+url.QueryEscape(got["next_cursor"].(string)), "")
	got = decode(t, rec)
	if svcs, _ := got["services"].([]any); rec.Code != 200 || len(svcs) != 1 || got["next_cursor"] != nil {
		t.Fatalf("last page: %d %v", rec.Code, got)
	}
	rec = a.do(http.MethodGet, "/v1/services", "")
	if got := decode(t, rec); rec.Code != 200 || got["total"] != 3.0 {
		t.Fatalf("full listing: %d %v", rec.Code, got)
	}
}

// TestListingsBounded: past MaxListings full listings at once, a listing
// waits, then gets 503 with Retry-After; a page (?limit=) is not bounded.
func TestListingsBounded(t *testing.T) {
	a := newTestAPI(t, func(c *Config) { c.MaxListings = 1 })
	a.srv.listings <- struct{}{} // one listing in progress
	rec := a.do(http.MethodGet, "/routes", "")
	wantError(t, rec, http.StatusServiceUnavailable, "too many concurrent listings")
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if rec := a.do(http.MethodGet, "/routes?limit=10", ""); rec.Code != 200 {
		t.Fatalf("a page while listings are full: %d %s", rec.Code, rec.Body.String())
	}
	<-a.srv.listings
	if rec := a.do(http.MethodGet, "/routes", ""); rec.Code != 200 {
		t.Fatalf("after the listing ended: %d %s", rec.Code, rec.Body.String())
	}
}
