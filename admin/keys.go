package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/apikey"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/ident"
	"github.com/mono/webhookd/store"
)

// KeyParams describes an API key to create.
type KeyParams struct {
	// Scope is store.ScopeAdmin, store.ScopeAccount or store.ScopeEventsWrite.
	Scope string
	// AccountID binds the key to one account: required for an account key,
	// refused for an admin key, optional for an events:write key.
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
		return &dispatcher.ValidationError{Field: "scope", Code: "missing_field", Message: "scope is required: admin, account or events:write"}
	case store.ScopeAdmin:
		if p.AccountID != "" {
			return &dispatcher.ValidationError{Field: "account_id", Code: "account_id_not_allowed", Message: "an admin key acts on every account and takes no account_id"}
		}
	case store.ScopeAccount:
		if p.AccountID == "" {
			return &dispatcher.ValidationError{Field: "account_id", Code: "missing_field", Message: "an account key is bound to one account: account_id is required"}
		}
	case store.ScopeEventsWrite:
	default:
		return &dispatcher.ValidationError{Field: "scope", Code: "invalid_scope", Message: fmt.Sprintf("scope must be admin, account or events:write, not %q", p.Scope)}
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

type keyRequest struct {
	Scope       string `json:"scope"`
	AccountID   string `json:"account_id"`
	Description string `json:"description"`
}

// KeyView is an API key as the API and `webhookd keys` show it: never its
// hash, and the key itself only in the answer that created it.
type KeyView struct {
	Key         string     `json:"key,omitempty"`
	ID          string     `json:"id"`
	Prefix      string     `json:"prefix"`
	Scope       string     `json:"scope"`
	AccountID   *string    `json:"account_id"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
}

// NewKeyView is k as shown, without the key.
func NewKeyView(k *store.APIKey) KeyView {
	return KeyView{
		ID: k.ID, Prefix: k.Prefix, Scope: k.Scope, AccountID: k.AccountID, Description: k.Description,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
	}
}

// View is the new key as shown, the one time with the key.
func (c *CreatedKey) View() KeyView {
	v := NewKeyView(c.APIKey)
	v.Key = c.Key
	return v
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req keyRequest
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
		writeError(w, errInternal())
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
		writeError(w, errInternal())
		return
	}
	rows := make([]KeyView, len(keys))
	for i, k := range keys {
		rows[i] = NewKeyView(k)
	}
	writeJSON(w, http.StatusOK, newPage(rows, pg, func(k KeyView) string { return k.ID }))
}

// revokeKey revokes a key for good: from then on it gets 401.
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id, apiErr := pathID(r, ident.Key, "API key")
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	revoked, err := store.RevokeAPIKey(r.Context(), a.pool, id, a.now().UTC())
	if err != nil {
		a.logger.Error("error revoking API key", zap.String("key_id", id), zap.Error(err))
		writeError(w, errInternal())
		return
	}
	if !revoked {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: "API key not found, or already revoked"})
		return
	}
	a.logger.Info("API key revoked", zap.String("key_id", id), zap.String("by_key_id", keyName(principalFrom(r.Context()))))
	w.WriteHeader(http.StatusNoContent)
}
