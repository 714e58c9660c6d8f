package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// ImportReport counts what Import did with each row of a dump.
type ImportReport struct {
	Rows, Created, Same, Conflicts, Invalid int
}

func (r ImportReport) String() string {
	return fmt.Sprintf("%d routes: %d created, %d already present, %d conflicts, %d invalid",
		r.Rows, r.Created, r.Same, r.Conflicts, r.Invalid)
}

// Import loads a GET /routes dump ({"routes": [...]} or a bare array) into
// the store with the validation POST /register applies. Invalid rows and
// conflicts are logged and counted; a store error stops the import (the
// report says how far it got).
func Import(ctx context.Context, store *registry.Store, dump []byte, log *slog.Logger) (ImportReport, error) {
	var rows []map[string]json.RawMessage
	var wrapped struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(dump, &wrapped); err == nil && wrapped.Routes != nil {
		rows = wrapped.Routes
	} else if err := json.Unmarshal(dump, &rows); err != nil {
		return ImportReport{}, fmt.Errorf("expected a GET /routes dump: %w", err)
	}
	rep := ImportReport{Rows: len(rows)}
	for i, row := range rows {
		// A dump carries registered_at; it is the store's to set.
		delete(row, "registered_at")
		req, _, err := parseRegister(row)
		if err != nil {
			rep.Invalid++
			log.Warn("import: invalid route skipped", "index", i, "error", err)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, isNew, err := store.RegisterRoute(rctx, registry.Route{Host: req.Host, Path: req.Path, Backend: req.Backend, Options: req.Options})
		cancel()
		switch {
		case errors.Is(err, registry.ErrRouteExists):
			rep.Conflicts++
			log.Warn("import: route exists with another backend or options", "host", req.Host, "path", req.Path)
		case err != nil:
			return rep, fmt.Errorf("import stopped at row %d: %w", i, err)
		case isNew:
			rep.Created++
			log.Info("audit", "action", "import", "host", req.Host, "path", req.Path, "backend", req.Backend)
		default:
			rep.Same++
		}
	}
	return rep, nil
}
