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
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
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
// *dispatcher.ValidationError names the field at fault.
func (p *KeyParams) Check() error {
	switch p.Scope {
	case "":
		return &dispatcher.ValidationError{Field: "scope", Code: "missing_field", Message: "scope is required: admin, account, events:write or portal:write"}
	case store.ScopeAdmin:
		if p.AccountID != "" {
			return &dispatcher.ValidationError{Field: "account_id", Code: "account_id_not_allowed", Message: "an admin key acts on every account and takes no account_id"}
		}
	case store.ScopeAccount:
		if p.AccountID == "" {
			return &dispatcher.ValidationError{Field: "account_id", Code: "missing_field", Message: "an account key is bound to one account: account_id is required"}
		}
	case store.ScopeEventsWrite, store.ScopePortalWrite:
	default:
		return &dispatcher.ValidationError{Field: "scope", Code: "invalid_scope", Message: fmt.Sprintf("scope must be admin, account, events:write or portal:write, not %q", p.Scope)}
	}
	if p.AccountID != "" {
		if err := dispatcher.ValidateAccountID(p.AccountID); err != nil {
			return err
		}
	}
	if apiErr := checkDescription(p.Description); apiErr != nil {
		return &dispatcher.ValidationError{Field: apiErr.Field, Code: apiErr.Code, Message: apiErr.Message}
	}
	return nil
}

// CreateKey checks p (before any SQL) and stores a new key on db. A
// *dispatcher.ValidationError names the field at fault. The API's POST
// /v1/keys and `webhookd keys create` both make keys with it.
func CreateKey(ctx context.Context, db store.DB, p *KeyParams, now time.Time) (*CreatedKey, error) {
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

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req apitype.KeyCreate
	if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	created, err := CreateKey(r.Context(), a.pool, &KeyParams{Scope: req.Scope, AccountID: req.AccountID, Description: req.Description}, a.now())
	var v *dispatcher.ValidationError
	if errors.As(err, &v) {
		writeError(w, validationError(err))
		return
	}
	if err != nil {
		a.logger.Error("error creating API key", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("API key created", zap.String("key_id", created.ID), zap.String("scope", created.Scope),
		zap.Stringp("account_id", created.AccountID), zap.String("by_key_id", keyName(principalFrom(r.Context()))))
	writeJSON(w, http.StatusCreated, created.View())
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	q, pg, apiErr := listQuery(r, ident.Key, "account_id")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var accountID *string
	if given := q.Get("account_id"); given != "" {
		if err := dispatcher.ValidateAccountID(given); err != nil {
			writeError(w, validationError(err))
			return
		}
		accountID = &given
	}
	keys, err := store.ListAPIKeys(r.Context(), a.pool, accountID, pg.before, pg.limit+1)
	if err != nil {
		a.logger.Error("error listing API keys", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	rows := make([]apitype.Key, len(keys))
	for i, k := range keys {
		rows[i] = NewKeyView(k)
	}
	writeJSON(w, http.StatusOK, newPage(rows, pg, func(k apitype.Key) string { return k.ID }))
}

// revokeKey revokes a key for good: from then on it gets 401.
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Key, "API key")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	revoked, err := store.RevokeAPIKey(r.Context(), a.pool, id, a.now().UTC())
	a.keyCache.forget(id)
	if err != nil {
		a.logger.Error("error revoking API key", zap.String("key_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	if !revoked {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "API key not found, or already revoked"})
		return
	}
	a.logger.Info("API key revoked", zap.String("key_id", id), zap.String("by_key_id", keyName(principalFrom(r.Context()))))
	w.WriteHeader(http.StatusNoContent)
}

// How long a rotated key keeps working: KeyGraceDefault unless a grace
// period of 0 to KeyGraceMax is given.
const (
	KeyGraceDefault = time.Hour
	KeyGraceMax     = 7 * 24 * time.Hour
)

// ParseKeyGrace reads a rotation's grace period: a Go duration ("90m",
// "1h30m", "0") or whole days ("2d"), from 0 to KeyGraceMax. A
// *dispatcher.ValidationError names the field "grace".
func ParseKeyGrace(raw string) (time.Duration, error) {
	bad := func(why string) error {
		return &dispatcher.ValidationError{Field: "grace", Code: "invalid_grace", Message: fmt.Sprintf("grace must be a duration from 0 to 7d, such as 0, 30m, 1h or 2d: %q %s", raw, why)}
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
// *KeyConflictError. The API's POST /v1/keys/{id}/rotate and `webhookd keys
// rotate` both rotate with it.
func RotateKey(ctx context.Context, db store.DB, id string, grace time.Duration, now time.Time) (*RotatedKey, error) {
	if grace < 0 || grace > KeyGraceMax {
		return nil, &dispatcher.ValidationError{Field: "grace", Code: "invalid_grace", Message: "grace must be from 0 to 7 days"}
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

// rotateKey is POST /v1/keys/{id}/rotate: a new key with the old one's
// scope and account (shown once), the old one working for the grace period
// and refused after.
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Key, "API key")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var req apitype.KeyRotate
	if r.ContentLength != 0 {
		if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}
	grace := KeyGraceDefault
	if req.Grace != nil {
		var err error
		if grace, err = ParseKeyGrace(*req.Grace); err != nil {
			writeError(w, validationError(err))
			return
		}
	}
	rotated, err := RotateKey(r.Context(), a.pool, id, grace, a.now())
	a.keyCache.forget(id)
	var conflict *KeyConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "API key not found"})
		return
	case errors.As(err, &conflict):
		writeError(w, &Error{Status: http.StatusConflict, Code: conflict.Code, Field: "id", Message: conflict.Message})
		return
	case err != nil:
		a.logger.Error("error rotating API key", zap.String("key_id", id), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.logger.Info("API key rotated", zap.String("key_id", id), zap.String("new_key_id", rotated.ID),
		zap.Duration("grace", grace), zap.Time("expires_at", *rotated.Old.ExpiresAt),
		zap.String("by_key_id", keyName(principalFrom(r.Context()))))
	writeJSON(w, http.StatusCreated, rotated.View())
}
