// Package store holds webhookd's SQL: every query on webhooks, events,
// deliveries, attempts and idempotency keys is a named constant here, run
// through a DB that is either a pool or a transaction.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mono/webhookd/apitype"
)

// DB is what every store function runs on: *pgxpool.Pool, *pgx.Conn or
// pgx.Tx.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateURL means the account already has a live webhook for the URL.
	ErrDuplicateURL = errors.New("the account already has a webhook with this URL")
)

// Delivery states.
const (
	StatePending   = apitype.StatePending
	StateSucceeded = apitype.StateSucceeded
	StateDead      = apitype.StateDead
	StateCancelled = apitype.StateCancelled
	// StatePaused: its webhook is paused; it waits, schedule kept, for
	// the webhook to resume.
	StatePaused = apitype.StatePaused
)

// IsUniqueViolation reports whether err is PostgreSQL's 23505.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// Webhook is a webhooks row. The secret stays encrypted here.
type Webhook struct {
	ID               string
	AccountID        string
	URL              string
	URLNormalized    string
	Description      string
	SecretCiphertext []byte
	SecretKeyID      string
	CreatedAt        time.Time
	DeletedAt        *time.Time
	// HeaderNames are the custom headers' names; HeadersCiphertext (with
	// HeadersKeyID) the encrypted JSON object of names to values, nil when
	// there are none.
	HeaderNames       []string
	HeadersCiphertext []byte
	HeadersKeyID      *string
	// PreviousSecretCiphertext (with its key id) is the secret before the
	// last rotation, still signing until PreviousSecretExpiresAt.
	PreviousSecretCiphertext []byte
	PreviousSecretKeyID      *string
	PreviousSecretExpiresAt  *time.Time
	// EventTypes filters the events the webhook receives: exact names, or
	// prefixes ending in *; empty means all.
	EventTypes []string
	// PausedAt is set while the webhook is paused (PauseReason says why).
	PausedAt    *time.Time
	PauseReason *string
	// SignatureScheme is SchemeMono (Mono-Signature only) or
	// SchemeStandard (the Standard Webhooks headers too). "" inserts
	// SchemeMono.
	SignatureScheme string
	// OnGone is OnGoneRetry (a 410 is a failure like any other) or
	// OnGonePause (a 410 pauses the webhook, reason PauseGone). ""
	// inserts OnGoneRetry.
	OnGone string
	// TLS is the webhook's client certificate and CA bundle (zero: none).
	TLS WebhookTLS
	// RateLimitPerSecond is the most attempts started per second across
	// all processes (RateLimitMin to RateLimitMax); nil: no limit.
	RateLimitPerSecond *int
	// Ordering is OrderingNone or OrderingFIFO (internal/store/fifo.go).
	Ordering string
}

// Signature schemes (webhooks.signature_scheme).
const (
	SchemeMono     = apitype.SchemeMono
	SchemeStandard = apitype.SchemeStandard
)

// What a 410 Gone answer does (webhooks.on_gone).
const (
	OnGoneRetry = apitype.OnGoneRetry
	OnGonePause = apitype.OnGonePause
)

const webhookInsert = `
WITH fifo AS ( -- a FIFO webhook's line row (store/fifo.go)
    INSERT INTO webhook_fifo (webhook_id) SELECT $1 WHERE $23 = 'fifo'
)
INSERT INTO webhooks (id, account_id, url, url_normalized, description, secret_ciphertext, secret_key_id, created_at,
                      header_names, headers_ciphertext, headers_key_id, event_types, signature_scheme, on_gone,
                      tls_ciphertext, tls_key_id, tls_ca_bundle, tls_cert_subject, tls_cert_issuer, tls_cert_serial, tls_cert_not_after,
                      rate_limit_per_second, ordering)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9::text[], '{}'), $10, $11, coalesce($12::text[], '{}'),
        coalesce(nullif($13, ''), 'mono'), coalesce(nullif($14, ''), 'retry'), $15, $16, $17, $18, $19, $20, $21, $22, coalesce(nullif($23, ''), 'none'))`

// InsertWebhook inserts w. A live webhook of the same account and normalised
// URL gives ErrDuplicateURL.
func InsertWebhook(ctx context.Context, db DB, w *Webhook) error {
	_, err := db.Exec(ctx, webhookInsert, w.ID, w.AccountID, w.URL, w.URLNormalized, w.Description, w.SecretCiphertext, w.SecretKeyID, w.CreatedAt,
		w.HeaderNames, w.HeadersCiphertext, w.HeadersKeyID, w.EventTypes, w.SignatureScheme, w.OnGone,
		w.TLS.Ciphertext, w.TLS.KeyID, w.TLS.CABundle, w.TLS.CertSubject, w.TLS.CertIssuer, w.TLS.CertSerial, w.TLS.CertNotAfter,
		w.RateLimitPerSecond, w.Ordering)
	if IsUniqueViolation(err) {
		return ErrDuplicateURL
	}
	return err
}

const webhookGet = `SELECT ` + webhookColumns + ` FROM webhooks WHERE id = $1 AND deleted_at IS NULL`

// GetWebhook returns the live webhook id, or ErrNotFound.
func GetWebhook(ctx context.Context, db DB, id string) (*Webhook, error) {
	return scanWebhook(db.QueryRow(ctx, webhookGet, id))
}

const webhookDelete = `
WITH deleted AS (
    UPDATE webhooks SET deleted_at = $2
    WHERE id = $1 AND deleted_at IS NULL AND ($3::text = '' OR account_id = $3)
    RETURNING id
), cancelled AS (
    UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, finished_at = $2, updated_at = $2
    WHERE webhook_id = (SELECT id FROM deleted) AND state IN ('pending', 'paused')
    RETURNING id
)
SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM cancelled)`

// DeleteWebhook soft-deletes the live webhook id and cancels its pending
// and paused deliveries, in one statement (a pending one's job then
// finishes without sending; a paused one has none). A non-empty accountID
// restricts it to that account's webhooks. ErrNotFound when there is no such
// live webhook.
func DeleteWebhook(ctx context.Context, db DB, id, accountID string, now time.Time) (cancelled int64, err error) {
	var deleted int64
	if err := db.QueryRow(ctx, webhookDelete, id, now, accountID).Scan(&deleted, &cancelled); err != nil {
		return 0, err
	}
	if deleted == 0 {
		return 0, ErrNotFound
	}
	return cancelled, nil
}

const webhooksLive = `
SELECT account_id, id, event_types, paused_at IS NOT NULL, ordering = 'fifo', rate_limit_per_second FROM webhooks
WHERE account_id = ANY($1) AND deleted_at IS NULL
ORDER BY account_id, id`

// webhooksLiveTargets is webhooksLive with what an attempt needs of each
// webhook, as GetTargets loads it, and each account's webhook version (0
// without a row), in one snapshot; an account with no live webhook has one
// row of NULLs after its version.
const webhooksLiveTargets = `
SELECT a.account_id, coalesce(v.version, 0), w.id, w.event_types, w.paused_at IS NOT NULL, w.ordering = 'fifo', w.rate_limit_per_second,
       w.url_normalized, w.secret_ciphertext, w.secret_key_id, w.headers_ciphertext, w.headers_key_id,
       w.previous_secret_ciphertext, w.previous_secret_key_id, w.previous_secret_expires_at,
       w.signature_scheme, w.on_gone, w.tls_ciphertext, w.tls_key_id, w.tls_ca_bundle
FROM unnest($1::text[]) AS a (account_id)
LEFT JOIN webhook_versions v ON v.account_id = a.account_id
LEFT JOIN webhooks w ON w.account_id = a.account_id AND w.deleted_at IS NULL
ORDER BY a.account_id, w.id`

// LiveWebhook is a live webhook as fan-out sees it.
type LiveWebhook struct {
	ID         string
	EventTypes []string
	Paused     bool
	FIFO       bool // ordering fifo: its deliveries take sequence numbers
	RateLimit  *int // rate_limit_per_second: its deliveries take start slots
	// Target holds the webhook's part of an attempt's Target (its address,
	// secrets, headers, scheme, client certificate), read by
	// LiveWebhooksWithTargets only; nil otherwise.
	Target *Target
}

// LiveWebhooks lists the live webhooks of each of accountIDs, oldest first,
// without locking them. An account with none has no entry.
func LiveWebhooks(ctx context.Context, db DB, accountIDs []string) (map[string][]LiveWebhook, error) {
	rows, err := db.Query(ctx, webhooksLive, accountIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string][]LiveWebhook)
	for rows.Next() {
		var (
			accountID string
			w         LiveWebhook
		)
		if err := rows.Scan(&accountID, &w.ID, &w.EventTypes, &w.Paused, &w.FIFO, &w.RateLimit); err != nil {
			return nil, err
		}
		out[accountID] = append(out[accountID], w)
	}
	return out, rows.Err()
}

// LiveWebhooksWithTargets is LiveWebhooks with each webhook's Target: what
// a first attempt needs of it, read in the transaction that creates the
// delivery, so that a process attempting the delivery at once
// (engine.Handoffs) needs no load (DeliveryTarget). It returns too the
// version of each of accountIDs' webhooks (webhook_versions, migration 29;
// 0 for an account with no row), read in the same statement: the version
// the webhooks read had (the intake's webhook cache keeps both).
// accountIDs must be distinct.
func LiveWebhooksWithTargets(ctx context.Context, db DB, accountIDs []string) (map[string][]LiveWebhook, map[string]int64, error) {
	rows, err := db.Query(ctx, webhooksLiveTargets, accountIDs)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	hooks, versions := make(map[string][]LiveWebhook), make(map[string]int64, len(accountIDs))
	for rows.Next() {
		var (
			accountID    string
			version      int64
			id           *string
			paused, fifo *bool
			url, keyID   *string
			scheme, gone *string
			w            LiveWebhook
			t            = &Target{}
		)
		if err := rows.Scan(&accountID, &version, &id, &w.EventTypes, &paused, &fifo, &w.RateLimit,
			&url, &t.SecretCipher, &keyID, &t.HeadersCipher, &t.HeadersKeyID,
			&t.PreviousSecretCipher, &t.PreviousSecretKeyID, &t.PreviousSecretExpiresAt,
			&scheme, &gone, &t.TLSCipher, &t.TLSKeyID, &t.TLSCABundle); err != nil {
			return nil, nil, err
		}
		versions[accountID] = version
		if id == nil {
			continue // no live webhook
		}
		w.ID, w.Paused, w.FIFO = *id, *paused, *fifo
		t.URL, t.SecretKeyID, t.SignatureScheme, t.OnGone = *url, *keyID, *scheme, *gone
		t.WebhookID, t.AccountID, t.Paused, t.RateLimit = w.ID, accountID, w.Paused, w.RateLimit
		w.Target = t
		hooks[accountID] = append(hooks[accountID], w)
	}
	return hooks, versions, rows.Err()
}

const secretRotate = `
UPDATE webhooks SET
    previous_secret_ciphertext = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE secret_ciphertext END,
    previous_secret_key_id = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE secret_key_id END,
    previous_secret_expires_at = $5,
    secret_ciphertext = $3, secret_key_id = $4
WHERE id = $1 AND deleted_at IS NULL AND ($2::text = '' OR account_id = $2)
RETURNING ` + webhookColumns

// RotateSecret makes ciphertext (under keyID) the live webhook id's
// secret. The secret it replaces keeps signing until previousExpiresAt;
// nil ends it at once. A secret rotated out earlier and still signing is
// replaced by this one: at most two secrets sign at a time. A non-empty
// accountID restricts it to that account's webhooks; ErrNotFound when there
// is no such live webhook.
func RotateSecret(ctx context.Context, db DB, id, accountID string, ciphertext []byte, keyID string, previousExpiresAt *time.Time) (*Webhook, error) {
	return scanWebhook(db.QueryRow(ctx, secretRotate, id, accountID, ciphertext, keyID, previousExpiresAt))
}

const webhookColumns = `id, account_id, url, url_normalized, description, secret_ciphertext, secret_key_id, created_at, deleted_at, header_names, headers_ciphertext, headers_key_id,
    previous_secret_ciphertext, previous_secret_key_id, previous_secret_expires_at, event_types, paused_at, pause_reason,
    signature_scheme, on_gone,
    tls_ciphertext, tls_key_id, tls_ca_bundle, tls_cert_subject, tls_cert_issuer, tls_cert_serial, tls_cert_not_after,
    rate_limit_per_second, ordering`

func scanWebhook(row pgx.Row) (*Webhook, error) {
	w := &Webhook{}
	err := row.Scan(&w.ID, &w.AccountID, &w.URL, &w.URLNormalized, &w.Description, &w.SecretCiphertext, &w.SecretKeyID, &w.CreatedAt, &w.DeletedAt,
		&w.HeaderNames, &w.HeadersCiphertext, &w.HeadersKeyID,
		&w.PreviousSecretCiphertext, &w.PreviousSecretKeyID, &w.PreviousSecretExpiresAt, &w.EventTypes, &w.PausedAt, &w.PauseReason,
		&w.SignatureScheme, &w.OnGone,
		&w.TLS.Ciphertext, &w.TLS.KeyID, &w.TLS.CABundle, &w.TLS.CertSubject, &w.TLS.CertIssuer, &w.TLS.CertSerial, &w.TLS.CertNotAfter,
		&w.RateLimitPerSecond, &w.Ordering)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return w, err
}

const webhookList = `SELECT ` + webhookColumns + ` FROM webhooks
WHERE account_id = $1 AND deleted_at IS NULL AND ($2::text = '' OR id < $2)
ORDER BY id DESC LIMIT $3`

// ListWebhooks lists the account's live webhooks newest first, starting
// after the id before (exclusive; "" for the first page). Ids are UUIDv7, so
// webhooks created while a client pages through appear before its cursor and
// never shift the pages after it.
func ListWebhooks(ctx context.Context, db DB, accountID, before string, limit int) ([]*Webhook, error) {
	rows, err := db.Query(ctx, webhookList, accountID, before, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hooks []*Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, w)
	}
	return hooks, rows.Err()
}

// WebhookUpdate is a change to a webhook; nil fields are left as they are.
type WebhookUpdate struct {
	Description *string
	// Headers, when not nil, replaces the custom headers (an empty
	// HeaderNames removes them all).
	Headers *WebhookHeaders
	// EventTypes, when not nil, replaces the event-type filter.
	EventTypes *[]string
	// SignatureScheme and OnGone, when not nil, replace theirs.
	SignatureScheme *string
	OnGone          *string
	// TLS, when not nil, replaces the TLS setting (an empty one removes
	// it).
	TLS *WebhookTLS
	// RateLimitPerSecond, when not nil, replaces the rate limit (a nil
	// inside removes it).
	RateLimitPerSecond **int
}

// WebhookHeaders are a webhook's custom headers as stored.
type WebhookHeaders struct {
	Names      []string
	Ciphertext []byte
	KeyID      *string
}

const webhookUpdate = `
UPDATE webhooks SET description = coalesce($3, description),
    header_names = CASE WHEN $4 THEN coalesce($5::text[], '{}') ELSE header_names END,
    headers_ciphertext = CASE WHEN $4 THEN $6 ELSE headers_ciphertext END,
    headers_key_id = CASE WHEN $4 THEN $7 ELSE headers_key_id END,
    event_types = CASE WHEN $8 THEN coalesce($9::text[], '{}') ELSE event_types END,
    signature_scheme = coalesce($10, signature_scheme), on_gone = coalesce($11, on_gone),
    tls_ciphertext = CASE WHEN $12 THEN $13 ELSE tls_ciphertext END,
    tls_key_id = CASE WHEN $12 THEN $14 ELSE tls_key_id END,
    tls_ca_bundle = CASE WHEN $12 THEN $15 ELSE tls_ca_bundle END,
    tls_cert_subject = CASE WHEN $12 THEN $16 ELSE tls_cert_subject END,
    tls_cert_issuer = CASE WHEN $12 THEN $17 ELSE tls_cert_issuer END,
    tls_cert_serial = CASE WHEN $12 THEN $18 ELSE tls_cert_serial END,
    tls_cert_not_after = CASE WHEN $12 THEN $19::timestamptz ELSE tls_cert_not_after END,
    rate_limit_per_second = CASE WHEN $20 THEN $21::integer ELSE rate_limit_per_second END
WHERE id = $1 AND deleted_at IS NULL AND ($2::text = '' OR account_id = $2)
RETURNING ` + webhookColumns

// UpdateWebhook applies u to the live webhook id and returns it. A non-empty
// accountID restricts it to that account's webhooks. ErrNotFound when there
// is no such live webhook.
func UpdateWebhook(ctx context.Context, db DB, id, accountID string, u *WebhookUpdate) (*Webhook, error) {
	h := u.Headers
	if h == nil {
		h = &WebhookHeaders{}
	}
	var types []string
	if u.EventTypes != nil {
		types = *u.EventTypes
	}
	tls := u.TLS
	if tls == nil {
		tls = &WebhookTLS{}
	}
	var rate *int
	if u.RateLimitPerSecond != nil {
		rate = *u.RateLimitPerSecond
	}
	return scanWebhook(db.QueryRow(ctx, webhookUpdate, id, accountID, u.Description, u.Headers != nil, h.Names, h.Ciphertext, h.KeyID,
		u.EventTypes != nil, types, u.SignatureScheme, u.OnGone,
		u.TLS != nil, tls.Ciphertext, tls.KeyID, tls.CABundle, tls.CertSubject, tls.CertIssuer, tls.CertSerial, tls.CertNotAfter,
		u.RateLimitPerSecond != nil, rate))
}

const secretRevealInsert = `INSERT INTO secret_reveals (webhook_id, key_id, created_at) VALUES ($1, $2, $3)`

// RecordSecretReveal records that webhook id's secret was shown to API key
// keyID (nil for the bootstrap admin key). The secret itself is never
// stored here.
func RecordSecretReveal(ctx context.Context, db DB, webhookID string, keyID *string, now time.Time) error {
	_, err := db.Exec(ctx, secretRevealInsert, webhookID, keyID, now)
	return err
}
