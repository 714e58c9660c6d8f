package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Listings are written page by page: a full listing holds one page in
// memory, never the whole registry, however slowly its client reads.
const (
	streamPage  = 500
	listingWait = 2 * time.Second // how long a full listing waits for a slot
)

// page is one request's ?limit= and ?cursor=. limit 0: no limit given.
type page struct {
	limit int
	after string
}

func pageParams(c echo.Context) (page, error) {
	var p page
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > registry.MaxPage {
			return p, badRequest("limit: expected an integer from 1 to %d", registry.MaxPage)
		}
		p.limit = n
	}
	if v := c.QueryParam("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			return p, badRequest("cursor: invalid (pass next_cursor from the previous page)")
		}
		if p.limit == 0 {
			return p, badRequest("cursor: only with limit")
		}
		p.after = string(b)
	}
	return p, nil
}

func encodeCursor(after string) string {
	if after == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(after))
}

// acquireListing bounds the full listings written at once; past the bound
// a request waits up to listingWait, then gets 503 with Retry-After.
func (srv *Server) acquireListing(ctx context.Context, c echo.Context) (release func(), err error) {
	select {
	case srv.listings <- struct{}{}:
		return func() { <-srv.listings }, nil
	default:
	}
	t := time.NewTimer(listingWait)
	defer t.Stop()
	select {
	case srv.listings <- struct{}{}:
		return func() { <-srv.listings }, nil
	case <-t.C:
		srv.m.listingsRefused.Inc()
		c.Response().Header().Set("Retry-After", "1")
		// A flood of listings sheds its connections too, not just its
		// requests: idle keep-alive connections of clients that do not
		// read would otherwise stay until the idle timeout.
		c.Response().Header().Set("Connection", "close")
		return nil, httpError(http.StatusServiceUnavailable, "too many concurrent listings")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// streamList writes {"<field>":[...],"total":N} from pages read one after
// the other. The first page is read before anything is written, so a store
// failure is still a 503; a failure later cuts the connection (the client
// sees a broken response, never a short list that looks whole).
func streamList[T any](srv *Server, c echo.Context, field string, read func(ctx context.Context, after string) ([]T, string, error)) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), srv.cfg.WriteTimeout)
	defer cancel()
	release, err := srv.acquireListing(ctx, c)
	if err != nil {
		return err
	}
	defer release()
	items, next, err := read(ctx, "")
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	// The connection ends with a full listing: a client that has not read
	// it must not then hold an idle keep-alive connection (and the kernel
	// buffers under it) until the idle timeout. Listings are rare; the
	// reconnect is cheap.
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	total := 0
	if _, err := w.Write([]byte(`{"` + field + `":[`)); err != nil {
		return nil // the client is gone
	}
	for {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				panic(http.ErrAbortHandler)
			}
			if total > 0 {
				b = append([]byte{','}, b...)
			}
			if _, err := w.Write(b); err != nil {
				return nil
			}
			total++
		}
		if next == "" {
			break
		}
		if items, next, err = read(ctx, next); err != nil {
			srv.log.Error("listing cut short", "path", c.Path(), "error", err)
			panic(http.ErrAbortHandler)
		}
	}
	_, _ = w.Write([]byte(`],"total":` + strconv.Itoa(total) + "}\n"))
	return nil
}
