package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/apikey"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
)

// Portal links: a product's backend mints a short-lived, single-use link
// for a user it has signed in (POST /v1/portal-links) and sends the user's
// browser to it; the dashboard (package dashboard) opens a session for the
// link's account with it (OpenPortalSession, op_session.go). Only the token's SHA-256 is
// stored.

// Portal link lifetimes.
const (
	// PortalLinkTTLDefault is how long a link can be used when the request
	// names no expires_in: 10 minutes.
	PortalLinkTTLDefault = 10 * time.Minute
	// PortalLinkTTLMin and PortalLinkTTLMax bound expires_in: from 1 minute
	// to 1 hour. The session a link opens lasts the dashboard's session
	// lifetime (12 hours) whatever the link's.
	PortalLinkTTLMin = time.Minute
	PortalLinkTTLMax = time.Hour
	// PortalLinkRecordRetention is how long the record of a link (who
	// minted it, when and from where it was used) is kept after it
	// expired: 90 days. Older records are deleted as links are minted.
	PortalLinkRecordRetention = 90 * 24 * time.Hour
	// PortalLinkPath is the dashboard path a link opens; the token follows.
	PortalLinkPath = "/dashboard/portal/"
	// PortalTokenPrefix starts every link's token, so a leaked one is
	// recognisable.
	PortalTokenPrefix = "whpl_"
)

// PortalLinkPrefix is the type of a portal link's id (pl_…).
const PortalLinkPrefix ident.Prefix = "pl"

// scopesPortal may mint and revoke portal links.
var scopesPortal = []string{store.ScopeAdmin, store.ScopePortalWrite}

// Outcomes of a link, the event label of webhookd_portal_links_total.
const (
	portalMinted  = "minted"
	portalUsed    = "used"
	portalRefused = "refused"
	portalRevoked = "revoked"
)

// Why a link was refused: PortalLinkError.Reason.
const (
	// PortalLinkUnknown: no link has this token (or it is not a token).
	PortalLinkUnknown = "unknown"
	// PortalLinkUsed: the link was used already; links work once.
	PortalLinkUsed = "used"
	// PortalLinkExpired: the link's lifetime is over.
	PortalLinkExpired = "expired"
	// PortalLinkRevoked: its account's links were revoked.
	PortalLinkRevoked = "revoked"
)

// PortalLinkError is a link that can't be used, and why (Reason is one of
// PortalLinkUnknown, PortalLinkUsed, PortalLinkExpired, PortalLinkRevoked).
type PortalLinkError struct {
	Reason string
	// Link is the link refused; nil when unknown.
	Link *store.PortalLink
}

func (e *PortalLinkError) Error() string { return "portal link refused: " + e.Reason }

// newPortalToken is PortalTokenPrefix and 32 random bytes in base64url.
func newPortalToken() string { return PortalTokenPrefix + randomToken() }

// looksLikePortalToken reports whether s has the shape of a link's token.
func looksLikePortalToken(s string) bool {
	rest, ok := strings.CutPrefix(s, PortalTokenPrefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// portalLinkTTL reads expires_in (seconds): PortalLinkTTLDefault when
// absent, else from PortalLinkTTLMin to PortalLinkTTLMax.
func portalLinkTTL(expiresIn *int64) (time.Duration, *Error) {
	if expiresIn == nil {
		return PortalLinkTTLDefault, nil
	}
	minS, maxS := int64(PortalLinkTTLMin/time.Second), int64(PortalLinkTTLMax/time.Second)
	if *expiresIn < minS || *expiresIn > maxS {
		return 0, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_expires_in", Field: "expires_in",
			Message: fmt.Sprintf("expires_in is the link's lifetime in seconds, from %d to %d (default %d), not %d", minS, maxS, int64(PortalLinkTTLDefault/time.Second), *expiresIn)}
	}
	return time.Duration(*expiresIn) * time.Second, nil
}

// portalBase is the origin links point at: WEBHOOKD_PUBLIC_URL's, or the
// request's own (https when the client's connection is).
func (a *API) portalBase(r *http.Request) string {
	if o := a.trust.Origin(); o != "" {
		return o
	}
	scheme := "http"
	if a.trust.Secure(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// clientAddr is r's client address as recorded ("" when unknown).
func (a *API) clientAddr(r *http.Request) string {
	if addr := a.trust.ClientIP(r); addr.IsValid() {
		return addr.String()
	}
	return ""
}

// The portal links' operations, for admin and portal:write keys.
var (
	opCreatePortalLink  = &opSpec{route: "POST /v1/portal-links", scopes: scopesPortal, budget: budgetManagement}
	opRevokePortalLinks = &opSpec{route: "DELETE /v1/portal-links", scopes: scopesPortal, budget: budgetManagement}
)

// CreatePortalLink mints a single-use link that signs a browser in to the
// dashboard for one account (POST /v1/portal-links; HTTP 201). The link
// points at WEBHOOKD_PUBLIC_URL's origin, else req.Origin.
func (a *API) CreatePortalLink(ctx context.Context, p *Principal, req *apitype.PortalLinkCreate) (*apitype.PortalLink, error) {
	if e := a.admit(ctx, p, opCreatePortalLink); e != nil {
		return nil, e
	}
	accountID, apiErr := accountOf(p, req.AccountID)
	if apiErr != nil {
		return nil, apiErr
	}
	ttl, apiErr := portalLinkTTL(req.ExpiresIn)
	if apiErr != nil {
		return nil, apiErr
	}
	now := a.now().UTC().Truncate(time.Microsecond)
	token := newPortalToken()
	link := &store.PortalLink{
		ID: ident.New(PortalLinkPrefix), TokenHash: apikey.Hash(token), AccountID: accountID,
		CreatedByKeyID: keyName(p), CreatedFrom: req.ClientAddr, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := store.InsertPortalLink(ctx, a.pool, link); err != nil {
		return nil, a.internal("error storing portal link", err, zap.String("account_id", accountID))
	}
	if _, err := store.PrunePortalLinks(ctx, a.pool, now.Add(-PortalLinkRecordRetention)); err != nil {
		a.logger.Warn("error deleting old portal link records", zap.Error(err))
	}
	a.metrics.PortalLinks(portalMinted, 1)
	a.logger.Info("portal link minted", zap.String("portal_link_id", link.ID), zap.String("account_id", accountID),
		zap.Time("expires_at", link.ExpiresAt), zap.String("by_key_id", link.CreatedByKeyID), zap.String("client_ip", link.CreatedFrom))
	origin := a.trust.Origin()
	if origin == "" {
		origin = req.Origin
	}
	return &apitype.PortalLink{ID: link.ID, URL: origin + PortalLinkPath + token, AccountID: accountID, ExpiresAt: link.ExpiresAt}, nil
}

// decodePortalLinkCreate reads POST /v1/portal-links's body, and the
// request's origin and client address.
func (a *API) decodePortalLinkCreate(w http.ResponseWriter, r *http.Request, req *apitype.PortalLinkCreate) *Error {
	if e := decodeJSON(w, r, SmallBodyLimit, req); e != nil {
		return e
	}
	req.Origin, req.ClientAddr = a.portalBase(r), a.clientAddr(r)
	return nil
}

// RevokePortalLinks revokes every link of an account (DELETE
// /v1/portal-links?account_id=): used or not, they stop working, and the
// sessions they opened end.
func (a *API) RevokePortalLinks(ctx context.Context, p *Principal, req *apitype.PortalLinksRevoke) (*apitype.PortalLinksRevoked, error) {
	if e := a.admit(ctx, p, opRevokePortalLinks); e != nil {
		return nil, e
	}
	accountID, apiErr := accountOf(p, req.AccountID)
	if apiErr != nil {
		return nil, apiErr
	}
	by := keyName(p)
	links, sessions, err := store.RevokePortalLinks(ctx, a.pool, accountID, a.now().UTC(), by)
	if err != nil {
		return nil, a.internal("error revoking portal links", err, zap.String("account_id", accountID))
	}
	a.metrics.PortalLinks(portalRevoked, int(links))
	a.logger.Info("portal links revoked", zap.String("account_id", accountID), zap.Int64("links", links),
		zap.Int64("sessions_ended", sessions), zap.String("by_key_id", by))
	return &apitype.PortalLinksRevoked{AccountID: accountID, RevokedLinks: links, EndedSessions: sessions}, nil
}

// decodePortalLinksRevoke reads DELETE /v1/portal-links's query:
// account_id.
func decodePortalLinksRevoke(_ http.ResponseWriter, r *http.Request, req *apitype.PortalLinksRevoke) *Error {
	q, apiErr := queryParams(r, "account_id")
	if apiErr != nil {
		return apiErr
	}
	req.AccountID = q.Get("account_id")
	return nil
}

// PortalLinkUse is who uses a link: the browser's address and user agent,
// recorded with the link.
type PortalLinkUse struct {
	ClientAddr string
	UserAgent  string
}

// openPortalLink uses the link of token, once: in one transaction it marks
// the link used (recording use) and calls start, which opens the session
// (OpenPortalSession's row in dashboard_sessions), so a link is used if
// and only if its session exists. A link that can't be used is a
// *PortalLinkError and nothing changes. Every use and refusal is logged
// and counted.
func (a *API) openPortalLink(ctx context.Context, token string, use *PortalLinkUse, start func(tx pgx.Tx, link *store.PortalLink) error) (*store.PortalLink, error) {
	now := a.now().UTC().Truncate(time.Microsecond)
	var link *store.PortalLink
	err := func() error {
		if !looksLikePortalToken(token) {
			return &PortalLinkError{Reason: PortalLinkUnknown}
		}
		hash := apikey.Hash(token)
		return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
			var err error
			link, err = store.UsePortalLink(ctx, tx, hash, now, use.ClientAddr, use.UserAgent)
			if errors.Is(err, store.ErrNotFound) {
				return a.portalLinkRefusal(ctx, tx, hash, now)
			}
			if err != nil {
				return fmt.Errorf("error using portal link: %w", err)
			}
			return start(tx, link)
		})
	}()
	var refused *PortalLinkError
	switch {
	case errors.As(err, &refused):
		a.metrics.PortalLinks(portalRefused, 1)
		fields := []zap.Field{zap.String("reason", refused.Reason), zap.String("client_ip", use.ClientAddr)}
		if refused.Link != nil {
			fields = append(fields, zap.String("portal_link_id", refused.Link.ID), zap.String("account_id", refused.Link.AccountID))
		}
		a.logger.Warn("portal link refused", fields...)
		return nil, err
	case err != nil:
		return nil, err
	}
	a.metrics.PortalLinks(portalUsed, 1)
	a.logger.Info("portal link used", zap.String("portal_link_id", link.ID), zap.String("account_id", link.AccountID),
		zap.String("client_ip", use.ClientAddr), zap.String("minted_by_key_id", link.CreatedByKeyID))
	return link, nil
}

// portalLinkRefusal says why the link of hash could not be used at now.
func (a *API) portalLinkRefusal(ctx context.Context, tx pgx.Tx, hash []byte, now time.Time) error {
	link, err := store.GetPortalLinkByHash(ctx, tx, hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &PortalLinkError{Reason: PortalLinkUnknown}
	case err != nil:
		return fmt.Errorf("error reading portal link: %w", err)
	case link.RevokedAt != nil:
		return &PortalLinkError{Reason: PortalLinkRevoked, Link: link}
	case link.UsedAt != nil:
		return &PortalLinkError{Reason: PortalLinkUsed, Link: link}
	case !now.Before(link.ExpiresAt):
		return &PortalLinkError{Reason: PortalLinkExpired, Link: link}
	}
	// Used, revoked or expired between the two statements.
	return &PortalLinkError{Reason: PortalLinkUsed, Link: link}
}
