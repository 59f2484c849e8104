package dashboard

import (
	"net/http"
	"strings"
	"time"

	"github.com/mono/webhookd/apitype"
)

// Settings › API keys, for admin sessions: the keys of every account
// (GET /v1/keys), New key (POST /v1/keys), Revoke (DELETE /v1/keys/{id})
// and Rotate with a grace period (POST /v1/keys/{id}/rotate). A key is
// shown once, in the answer to the form that made it; never again. Each
// calls the API's typed operation of that route (d.api.ListKeys …) as the
// signed-in key: the API's scopes, rate limit and messages.

// KeysPageDefault is how many keys the API keys page lists.
const KeysPageDefault = 50

// KeyGraceDefault is the Rotate form's default grace period: the API's
// (admin.KeyGraceDefault).
const KeyGraceDefault = "1h"

// graceChoices are the grace periods the Rotate form offers (the API takes
// 0 to 7 days).
var graceChoices = []overlapChoice{
	{"0", "None: the old key stops at once"},
	{"1h", "1 hour"},
	{"24h", "24 hours"},
	{"7d", "7 days"},
}

// keyScopes are the scopes a new key may have.
var keyScopes = []overlapChoice{
	{"account", "account: one account's webhooks, events and deliveries"},
	{"events:write", "events:write: send events only"},
	{"portal:write", "portal:write: mint dashboard portal links only"},
	{"admin", "admin: every route, every account"},
}

// keyRow is a key as listed.
type keyRow struct {
	apitype.Key
	// State is live, rotated (working until ExpiresAt), expired or revoked.
	State string
	// Current marks the key this session signed in with.
	Current bool
	// Error is the API's refusal of an action on this key.
	Error string
}

// Revocable says the key still works (revoking a rotated one ends its
// grace period at once); Rotatable that it can be rotated.
func (k keyRow) Revocable() bool { return apitype.KeyWorks(k.State) }
func (k keyRow) Rotatable() bool { return k.State == apitype.KeyStateLive }

// keyForm is the New key form, as sent and shown again with the API's
// error beside the field it names.
type keyForm struct {
	Scope       string
	AccountID   string
	Description string
	Errors      map[string]string
	Open        bool
}

// newKey is a key just made, shown this once; for a rotation, the key it
// replaces and when that one stops working.
type newKey struct {
	Key         string
	ID          string
	Prefix      string
	Scope       string
	AccountID   *string
	OldKeyID    string
	OldPrefix   string
	OldExpires  time.Time
	OldExpiring bool
}

type keysData struct {
	// AccountID filters the list (GET /v1/keys?account_id=).
	AccountID    string
	AccountError string
	Keys         []keyRow
	NextCursor   string
	Form         keyForm
	New          *newKey
	// Grace is the Rotate form's chosen grace period.
	Grace string
}

// Scopes and Graces are the forms' choices.
func (keysData) Scopes() []overlapChoice { return keyScopes }
func (keysData) Graces() []overlapChoice { return graceChoices }

func keysCrumbs() []crumb {
	return settingsCrumbs(crumb{Label: "API keys"})
}

// requireAdminKeys answers account sessions 403, like the dead view.
func (d *Dashboard) requireAdminKeys(w http.ResponseWriter, r *http.Request) bool {
	if !sessionFrom(r.Context()).Admin() {
		d.errorPage(w, r, http.StatusForbidden, "Admin keys only", "API keys are managed with an admin key.", Prefix+"/settings/personal/api")
		return false
	}
	return true
}

func (d *Dashboard) keysPage(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdminKeys(w, r) {
		return
	}
	q := r.URL.Query()
	d.showKeys(w, r, &keysData{AccountID: strings.TrimSpace(q.Get("account_id")), Form: keyForm{Scope: "account"}, Grace: KeyGraceDefault},
		http.StatusOK, notices[q.Get("notice")], "", "", q.Get("cursor"))
}

// showKeys renders the API keys page with data and the list (a page from
// cursor), a row's error under rowID.
func (d *Dashboard) showKeys(w http.ResponseWriter, r *http.Request, data *keysData, status int, notice, errMsg, rowID, cursor string) {
	s := sessionFrom(r.Context())
	v := &view{Title: "API keys", Nav: "settings", Crumbs: keysCrumbs(), Data: data, Notice: notice, Error: errMsg}
	page, err := d.api.ListKeys(r.Context(), s.Principal, &apitype.KeyList{AccountID: data.AccountID, Cursor: cursor, Limit: KeysPageDefault})
	if err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.apiFailed(w, r, e, "")
			return
		}
		if e.Field == "account_id" {
			data.AccountError = e.Message
		} else {
			v.Error = e.Message
		}
		d.render(w, r, e.Status, "keys", v)
		return
	}
	now := d.now()
	for _, k := range page.Data {
		row := keyRow{Key: k, State: apitype.KeyStateAt(k.RevokedAt, k.ExpiresAt, now), Current: k.ID == s.Principal.KeyID}
		if k.ID == rowID {
			row.Error = errMsg
		}
		if data.New != nil && data.New.OldKeyID == k.ID {
			data.New.OldPrefix = k.Prefix
		}
		data.Keys = append(data.Keys, row)
	}
	if page.NextCursor != "" {
		data.NextCursor = page.NextCursor
	}
	d.render(w, r, status, "keys", v)
}

// createKey is New key: POST /v1/keys; the key is shown once, in this
// answer.
func (d *Dashboard) createKey(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdminKeys(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	f := keyForm{Scope: strings.TrimSpace(r.PostFormValue("scope")), AccountID: strings.TrimSpace(r.PostFormValue("account_id")), Description: r.PostFormValue("description")}
	data := &keysData{Grace: KeyGraceDefault}
	out, err := d.api.CreateKey(r.Context(), s.Principal, &apitype.KeyCreate{Scope: f.Scope, AccountID: f.AccountID, Description: f.Description})
	if err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.apiFailed(w, r, e, "")
			return
		}
		f.Open = true
		switch e.Field {
		case "scope", "account_id", "description":
			f.Errors = map[string]string{e.Field: e.Message}
		default:
			f.Errors = map[string]string{"scope": e.Message}
		}
		data.Form = f
		d.showKeys(w, r, data, e.Status, "", "No key was made: "+e.Message, "", "")
		return
	}
	data.Form = keyForm{Scope: "account"}
	data.New = &newKey{Key: out.Key, ID: out.ID, Prefix: out.Prefix, Scope: out.Scope, AccountID: out.AccountID}
	d.showKeys(w, r, data, http.StatusOK, "", "", "", "")
}

// revokeKey is Revoke: DELETE /v1/keys/{id}, after the row's confirmation.
func (d *Dashboard) revokeKey(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdminKeys(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	id := r.PathValue("id")
	if _, err := d.api.RevokeKey(r.Context(), s.Principal, &apitype.KeyRevoke{ID: id}); err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.apiFailed(w, r, e, "")
			return
		}
		d.showKeys(w, r, &keysData{Form: keyForm{Scope: "account"}, Grace: KeyGraceDefault}, e.Status, "", "The key was not revoked: "+e.Message, id, "")
		return
	}
	http.Redirect(w, r, Prefix+"/settings/keys?notice=revoked", http.StatusSeeOther)
}

// rotateKey is Rotate: POST /v1/keys/{id}/rotate with the grace chosen; the
// new key is shown once, in this answer, with the old one's expiry.
func (d *Dashboard) rotateKey(w http.ResponseWriter, r *http.Request) {
	if !d.requireAdminKeys(w, r) {
		return
	}
	s := sessionFrom(r.Context())
	id := r.PathValue("id")
	grace := strings.TrimSpace(r.PostFormValue("grace"))
	if grace == "" {
		grace = KeyGraceDefault
	}
	data := &keysData{Form: keyForm{Scope: "account"}, Grace: KeyGraceDefault}
	out, err := d.api.RotateKey(r.Context(), s.Principal, &apitype.KeyRotate{ID: id, Grace: &grace})
	if err != nil {
		e := opError(err)
		if e.Status >= 500 {
			d.apiFailed(w, r, e, "")
			return
		}
		data.Grace = grace
		d.showKeys(w, r, data, e.Status, "", "The key was not rotated: "+e.Message, id, "")
		return
	}
	data.New = &newKey{Key: out.Key.Key, ID: out.ID, Prefix: out.Prefix, Scope: out.Scope, AccountID: out.AccountID,
		OldKeyID: out.OldKeyID, OldExpires: out.OldKeyExpiresAt, OldExpiring: true}
	d.showKeys(w, r, data, http.StatusOK, "", "", "", "")
}
