package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/migrations"
)

// ReadyTimeout bounds the database checks of GET /readyz.
const ReadyTimeout = 2 * time.Second

// riverLatest is the newest River migration this binary applies.
var riverLatest = func() int {
	m, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return 0
	}
	all := m.AllVersions()
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Version
}()

// Readiness says what keeps db from serving this webhookd: nothing when the
// database answers and both webhookd's and River's migrations are current
// (store.CheckSchema, store.CheckRiverSchema). Each reason is a sentence
// for an operator; connection details are left out (GET /readyz needs no
// key), and err holds them.
func Readiness(ctx context.Context, db store.DB) (reasons []string, err error) {
	var behind *store.SchemaBehindError
	err = store.CheckSchema(ctx, db)
	switch {
	case errors.Is(err, store.ErrNotMigrated):
		reasons = append(reasons, "the webhookd schema is not migrated (no "+migrations.VersionTable+" table): run `webhookd migrate`")
	case errors.As(err, &behind):
		reasons = append(reasons, behind.Error())
	case err != nil:
		return []string{dbReason(err)}, err
	}

	err = store.CheckRiverSchema(ctx, db, riverLatest)
	switch {
	case errors.Is(err, store.ErrNotMigrated):
		reasons = append(reasons, "River's schema is not migrated (no river_migration table): run `webhookd migrate`")
	case errors.As(err, &behind):
		reasons = append(reasons, behind.Error())
	case err != nil:
		return append(reasons, dbReason(err)), err
	}
	return reasons, nil
}

// dbReason describes a database error without the connection details
// (host, user, database) a pgconn error message carries.
func dbReason(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the database did not answer within %s", ReadyTimeout)
	case errors.As(err, &pgErr):
		return "the database refused the readiness check with error " + pgErr.Code + " (details in the server log)"
	default:
		return "the database can't be reached (details in the server log)"
	}
}

type readyResponse struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons,omitempty"`
}

// readyz is GET /readyz, without auth: 200 {"status":"ready"} when the
// database answers and its migrations are current, else 503 with the
// reasons.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	reasons, err := Readiness(ctx, a.pool)
	if err != nil {
		a.logger.Warn("readiness check: database error", zap.Error(err))
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, readyResponse{Status: "not_ready", Reasons: reasons})
		return
	}
	writeJSON(w, http.StatusOK, readyResponse{Status: "ready"})
}
