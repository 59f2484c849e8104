package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// KeyParams describes an API key to create.
type KeyParams struct {
	// Scope is store.ScopeAdmin, store.ScopeAccount, store.ScopeEventsWrite
	// or store.ScopePortalWrite.
	Scope string
	// AccountID binds the key to one account: required for an account key,
	// refused for an admin key, optional for an events:write or
	// portal:write key.
	AccountID string
	// Description says what the key is for, at most DescriptionMaxLen
	// characters. Optional.
	Description string
}

// CreatedKey is a new API key. Key is the key itself: it is shown once and
// only its hash is stored.
type CreatedKey struct {
	Key string
	*store.APIKey
}

// Check applies the scope rules without touching the database: a
// *engine.ValidationError names the field at fault.
func (p *KeyParams) Check() error {
	switch p.Scope {
	case "":
		return &engine.ValidationError{Field: "scope", Code: "missing_field", Message: "scope is required: admin, account, events:write or portal:write"}
	case store.ScopeAdmin:
		if p.AccountID != "" {
			return &engine.ValidationError{Field: "account_id", Code: "account_id_not_allowed", Message: "an admin key acts on every account and takes no account_id"}
		}
	case store.ScopeAccount:
		if p.AccountID == "" {
			return &engine.ValidationError{Field: "account_id", Code: "missing_field", Message: "an account key is bound to one account: account_id is required"}
		}
	case store.ScopeEventsWrite, store.ScopePortalWrite:
	default:
		return &engine.ValidationError{Field: "scope", Code: "invalid_scope", Message: fmt.Sprintf("scope must be admin, account, events:write or portal:write, not %q", p.Scope)}
	}
	if p.AccountID != "" {
		if err := webhookrule.ValidateAccountID(p.AccountID); err != nil {
			return err
		}
	}
	if apiErr := checkDescription(p.Description); apiErr != nil {
		return &engine.ValidationError{Field: apiErr.Field, Code: apiErr.Code, Message: apiErr.Message}
	}
	return nil
}

// insertKey checks p (before any SQL) and stores a new key on db. A
// *engine.ValidationError names the field at fault. The operation
// CreateKey makes keys with it.
func insertKey(ctx context.Context, db store.DB, p *KeyParams, now time.Time) (*CreatedKey, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	key, display, hash := apikey.Generate()
	k := &store.APIKey{
		ID:          ident.New(ident.Key),
		Prefix:      display,
		Hash:        hash,
		Scope:       p.Scope,
		Description: p.Description,
		CreatedAt:   now.UTC().Truncate(time.Microsecond),
	}
	if p.AccountID != "" {
		k.AccountID = &p.AccountID
	}
	if err := store.InsertAPIKey(ctx, db, k); err != nil {
		return nil, fmt.Errorf("error storing API key: %w", err)
	}
	return &CreatedKey{Key: key, APIKey: k}, nil
}

// keyName names the key behind p in logs: its id, or "bootstrap".
func keyName(p *Principal) string {
	if p.Bootstrap() {
		return "bootstrap"
	}
	return p.KeyID
}

// NewKeyView is k as shown, without the key.
func NewKeyView(k *store.APIKey) apitype.Key {
	return apitype.Key{
		ID: k.ID, Prefix: k.Prefix, Scope: k.Scope, AccountID: k.AccountID, Description: k.Description,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
		ExpiresAt: k.ExpiresAt, ReplacedBy: k.ReplacedBy,
	}
}

// View is the new key as shown, the one time with the key.
func (c *CreatedKey) View() apitype.Key {
	v := NewKeyView(c.APIKey)
	v.Key = c.Key
	return v
}

// The keys family's operations: POST /v1/keys, GET /v1/keys, DELETE
// /v1/keys/{id} and POST /v1/keys/{id}/rotate, for admin keys only. The
// JSON API (routes), the dashboard (Settings › API keys) and `webhookd
// keys` (as OperatorPrincipal) all call them.
var (
	opCreateKey = &opSpec{route: "POST /v1/keys", scopes: scopesAdmin, budget: budgetManagement}
	opListKeys  = &opSpec{route: "GET /v1/keys", scopes: scopesAdmin, budget: budgetManagement}
	opRevokeKey = &opSpec{route: "DELETE /v1/keys/{id}", scopes: scopesAdmin, budget: budgetManagement}
	opRotateKey = &opSpec{route: "POST /v1/keys/{id}/rotate", scopes: scopesAdmin, budget: budgetManagement}
)

// CreateKey makes an API key (POST /v1/keys): the answer holds the key
// itself, the only time it is shown. A field that breaks the scope rules
// (KeyParams.Check) is a 422 naming it.
func (a *API) CreateKey(ctx context.Context, p *Principal, req *apitype.KeyCreate) (*apitype.Key, error) {
	if e := a.admit(ctx, p, opCreateKey); e != nil {
		return nil, e
	}
	created, err := insertKey(ctx, a.pool, &KeyParams{Scope: req.Scope, AccountID: req.AccountID, Description: req.Description}, a.now())
	var v *engine.ValidationError
	if errors.As(err, &v) {
		return nil, validationError(err)
	}
	if err != nil {
		return nil, a.internal("error creating API key", err)
	}
	a.logger.Info("API key created", zap.String("key_id", created.ID), zap.String("scope", created.Scope),
		zap.Stringp("account_id", created.AccountID), zap.String("by_key_id", keyName(p)))
	view := created.View()
	return &view, nil
}

// ListKeys is a page of the API keys (GET /v1/keys), newest first: every
// account's, or req.AccountID's.
func (a *API) ListKeys(ctx context.Context, p *Principal, req *apitype.KeyList) (*apitype.Page[apitype.Key], error) {
	if e := a.admit(ctx, p, opListKeys); e != nil {
		return nil, e
	}
	pg, e := pageOf(req.Limit, req.Cursor, ident.Key)
	if e != nil {
		return nil, e
	}
	var accountID *string
	if given := req.AccountID; given != "" {
		if err := webhookrule.ValidateAccountID(given); err != nil {
			return nil, validationError(err)
		}
		accountID = &given
	}
	keys, err := store.ListAPIKeys(ctx, a.pool, accountID, pg.before, pg.limit+1)
	if err != nil {
		return nil, a.internal("error listing API keys", err)
	}
	rows := make([]apitype.Key, len(keys))
	for i, k := range keys {
		rows[i] = NewKeyView(k)
	}
	page := newPage(rows, pg, func(k apitype.Key) string { return k.ID })
	return &page, nil
}

// decodeKeyList reads GET /v1/keys's query: limit, cursor, account_id.
func decodeKeyList(_ http.ResponseWriter, r *http.Request, req *apitype.KeyList) *Error {
	q, pg, e := listQuery(r, ident.Key, "account_id")
	if e != nil {
		return e
	}
	req.AccountID, req.Cursor, req.Limit = q.Get("account_id"), q.Get("cursor"), pg.limit
	return nil
}

// KeyRevokedError is the cause (errors.As on the *Error) of a 404 from
// RevokeKey for a key that exists but was revoked already; an unknown
// key's cause is store.ErrNotFound. The API answers both alike.
type KeyRevokedError struct{ At time.Time }

func (e *KeyRevokedError) Error() string {
	return "API key already revoked at " + e.At.UTC().Format(time.RFC3339)
}

// RevokeKey revokes a key for good (DELETE /v1/keys/{id}): from then on it
// gets 401. Unknown or already revoked: 404.
func (a *API) RevokeKey(ctx context.Context, p *Principal, req *apitype.KeyRevoke) (*NoContent, error) {
	if e := a.admit(ctx, p, opRevokeKey); e != nil {
		return nil, e
	}
	id := req.ID
	if e := checkID(id, ident.Key, "API key"); e != nil {
		return nil, e
	}
	revoked, err := store.RevokeAPIKey(ctx, a.pool, id, a.now().UTC())
	a.keyCache.forget(id)
	if err != nil {
		return nil, a.internal("error revoking API key", err, zap.String("key_id", id))
	}
	if !revoked {
		e := &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "API key not found, or already revoked"}
		// Which of the two, for the callers in process that say it (the
		// CLI); the answer is the same.
		switch k, err := store.GetAPIKey(ctx, a.pool, id); {
		case err != nil:
			e.cause = err
		case k.RevokedAt != nil:
			e.cause = &KeyRevokedError{At: *k.RevokedAt}
		}
		return nil, e
	}
	a.logger.Info("API key revoked", zap.String("key_id", id), zap.String("by_key_id", keyName(p)))
	return &NoContent{}, nil
}

// decodeKeyRevoke reads DELETE /v1/keys/{id}'s id.
func decodeKeyRevoke(_ http.ResponseWriter, r *http.Request, req *apitype.KeyRevoke) *Error {
	id, e := pathID(r, ident.Key, "API key")
	req.ID = id
	return e
}

// How long a rotated key keeps working: KeyGraceDefault unless a grace
// period of 0 to KeyGraceMax is given.
const (
	KeyGraceDefault = time.Hour
	KeyGraceMax     = 7 * 24 * time.Hour
)

// ParseKeyGrace reads a rotation's grace period: a Go duration ("90m",
// "1h30m", "0") or whole days ("2d"), from 0 to KeyGraceMax. A
// *engine.ValidationError names the field "grace".
func ParseKeyGrace(raw string) (time.Duration, error) {
	bad := func(why string) error {
		return &engine.ValidationError{Field: "grace", Code: "invalid_grace", Message: fmt.Sprintf("grace must be a duration from 0 to 7d, such as 0, 30m, 1h or 2d: %q %s", raw, why)}
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(raw, "d"); ok {
		if days == "" || strings.Trim(days, "0123456789") != "" || len(days) > 3 {
			return 0, bad("is not a duration")
		}
		n, _ := strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(raw); err != nil {
			return 0, bad("is not a duration")
		}
	}
	switch {
	case d < 0:
		return 0, bad("is negative")
	case d > KeyGraceMax:
		return 0, bad("is longer than 7 days")
	}
	return d, nil
}

// KeyConflictError says why a key can't be rotated. Code is key_revoked,
// key_already_rotated or key_expired.
type KeyConflictError struct {
	Code    string
	Message string
}

func (e *KeyConflictError) Error() string { return e.Message }

// RotatedKey is the outcome of RotateKey: the new key (shown once) and the
// old one as it now is, expiring at Old.ExpiresAt.
type RotatedKey struct {
	*CreatedKey
	Old *store.APIKey
}

// View is the new key as shown, the one time with the key, and when the old
// one stops working.
func (r *RotatedKey) View() apitype.KeyRotated {
	return apitype.KeyRotated{Key: r.CreatedKey.View(), OldKeyID: r.Old.ID, OldKeyExpiresAt: *r.Old.ExpiresAt}
}

// RotateKey replaces key id, in one transaction on db: a new key with the
// same scope, account and description, and the old one expiring at now +
// grace (replaced_by the new one). A key that is unknown is
// store.ErrNotFound; one revoked, already rotated or expired is a
// *KeyConflictError. The operation RotateKey rotates with it.
func rotateKeyTx(ctx context.Context, db store.DB, id string, grace time.Duration, now time.Time) (*RotatedKey, error) {
	if grace < 0 || grace > KeyGraceMax {
		return nil, &engine.ValidationError{Field: "grace", Code: "invalid_grace", Message: "grace must be from 0 to 7 days"}
	}
	now = now.UTC().Truncate(time.Microsecond)
	var out *RotatedKey
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		old, err := store.GetAPIKeyForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		switch {
		case old.RevokedAt != nil:
			return &KeyConflictError{Code: "key_revoked", Message: "API key " + id + " is revoked: make a new key instead"}
		case old.ReplacedBy != nil:
			return &KeyConflictError{Code: "key_already_rotated", Message: "API key " + id + " was already rotated (to " + *old.ReplacedBy + "): rotate that key instead"}
		case old.ExpiresAt != nil && !now.Before(*old.ExpiresAt):
			return &KeyConflictError{Code: "key_expired", Message: "API key " + id + " has expired: make a new key instead"}
		}
		key, display, hash := apikey.Generate()
		k := &store.APIKey{
			ID:          ident.New(ident.Key),
			Prefix:      display,
			Hash:        hash,
			Scope:       old.Scope,
			AccountID:   old.AccountID,
			Description: old.Description,
			CreatedAt:   now,
		}
		if err := store.InsertAPIKey(ctx, tx, k); err != nil {
			return fmt.Errorf("error storing API key: %w", err)
		}
		expires := now.Add(grace)
		replaced, err := store.ReplaceAPIKey(ctx, tx, id, k.ID, expires, now)
		if err != nil {
			return fmt.Errorf("error expiring API key %s: %w", id, err)
		}
		if !replaced { // unreachable while the row is locked
			return &KeyConflictError{Code: "key_already_rotated", Message: "API key " + id + " changed while it was rotated"}
		}
		old.ExpiresAt, old.ReplacedBy = &expires, &k.ID
		out = &RotatedKey{CreatedKey: &CreatedKey{Key: key, APIKey: k}, Old: old}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RotateKey replaces key req.ID (POST /v1/keys/{id}/rotate): a new key
// with the old one's scope and account (shown once), the old one working
// for req.Grace (default KeyGraceDefault) and refused after. Unknown: 404
// (cause store.ErrNotFound); revoked, rotated or expired: 409 (cause a
// *KeyConflictError).
func (a *API) RotateKey(ctx context.Context, p *Principal, req *apitype.KeyRotate) (*apitype.KeyRotated, error) {
	if e := a.admit(ctx, p, opRotateKey); e != nil {
		return nil, e
	}
	id := req.ID
	if e := checkID(id, ident.Key, "API key"); e != nil {
		return nil, e
	}
	grace := KeyGraceDefault
	if req.Grace != nil {
		var err error
		if grace, err = ParseKeyGrace(*req.Grace); err != nil {
			return nil, validationError(err)
		}
	}
	rotated, err := rotateKeyTx(ctx, a.pool, id, grace, a.now())
	a.keyCache.forget(id)
	var conflict *KeyConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "API key not found", cause: err}
	case errors.As(err, &conflict):
		return nil, &Error{Status: http.StatusConflict, Code: conflict.Code, Field: "id", Message: conflict.Message, cause: conflict}
	case err != nil:
		return nil, a.internal("error rotating API key", err, zap.String("key_id", id))
	}
	a.logger.Info("API key rotated", zap.String("key_id", id), zap.String("new_key_id", rotated.ID),
		zap.Duration("grace", grace), zap.Time("expires_at", *rotated.Old.ExpiresAt),
		zap.String("by_key_id", keyName(p)))
	view := rotated.View()
	return &view, nil
}

// decodeKeyRotate reads POST /v1/keys/{id}/rotate: the path's id, then
// the body, which may be empty.
func decodeKeyRotate(w http.ResponseWriter, r *http.Request, req *apitype.KeyRotate) *Error {
	id, e := pathID(r, ident.Key, "API key")
	if e != nil {
		return e
	}
	if r.ContentLength != 0 {
		if e := decodeJSON(w, r, SmallBodyLimit, req); e != nil {
			return e
		}
	}
	req.ID = id
	return nil
}
