package admin

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// listRequest is a GET /v1/deliveries request with rawQuery, as the key
// bound to boundAccount (every account when empty) would make it.
func listRequest(rawQuery, boundAccount string) *http.Request {
	p := &Principal{KeyID: "key_fuzz", Scope: store.ScopeAdmin}
	if boundAccount != "" {
		p = &Principal{KeyID: "key_fuzz", Scope: store.ScopeAccount, AccountID: boundAccount}
	}
	ctx := context.WithValue(context.Background(), principalKey{}, p)
	return (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/v1/deliveries", RawQuery: rawQuery}, Header: http.Header{}}).WithContext(ctx)
}

// FuzzDeliveryListQuery feeds arbitrary query strings to the delivery
// listing's parser. It never panics; a refusal is a 400, 403 or 422 naming
// a code; what it accepts is valid through and through (state, ids, type,
// range, limit, cursor) and confined to a bound key's account; and the SQL
// built from it carries every value as a parameter.
func FuzzDeliveryListQuery(f *testing.F) {
	dlv := ident.New(ident.Delivery)
	cursor := store.DeliveryCursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: dlv}.String()
	for _, seed := range []string{
		"account_id=acct_1",
		"state=dead",
		"state=dead&limit=1000&cursor=" + cursor,
		"webhook_id=" + ident.New(ident.Webhook) + "&event_type=bank_transfer_approved&event_id=" + ident.New(ident.Event),
		"account_id=acct_1&created_after=2026-01-01T00:00:00Z&created_before=2026-01-02T00:00:00.5+05:30",
		"account_id=acct_1&created_after=2026-01-01T00:00:00 01:00",
		"account_id=acct_1&created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z",
		"account_id=acct_1&limit=0", "account_id=acct_1&limit=-1", "account_id=acct_1&limit=1e3", "account_id=acct_1&limit=99999999999999999999",
		"account_id=acct_1&account_id=acct_2", "account_id=a%zz", "state=Dead", "bogus=1", "account_id=acct%27%3B--",
		"account_id=acct_1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-1."+dlv)),
		"account_id=acct_1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("253402300800000000."+dlv)),
		"account_id=acct_1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(dlv)),
		"", ";", "&&&=", "state=pending&state=", "event_type=", "created_after=0000-01-01T00:00:00-23:59&account_id=x",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, bound bool) {
		boundAccount := ""
		if bound {
			boundAccount = "acct_bound"
		}
		filter, after, limit, apiErr := parseDeliveryList(listRequest(rawQuery, boundAccount))
		if apiErr != nil {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden, http.StatusUnprocessableEntity}, apiErr.Status, "%+v", apiErr)
			require.NotEmpty(t, apiErr.Code)
			require.NotEmpty(t, apiErr.Message)
			require.Nil(t, filter)
			return
		}

		require.GreaterOrEqual(t, limit, 1)
		require.LessOrEqual(t, limit, LimitMax)
		if filter.State != "" {
			require.Contains(t, store.DeliveryStates, filter.State)
		}
		if bound {
			require.Equal(t, boundAccount, filter.AccountID, "a bound key listed another account")
		}
		if filter.AccountID != "" {
			require.NoError(t, webhookrule.ValidateAccountID(filter.AccountID))
		}
		if filter.WebhookID != "" {
			require.True(t, ident.Valid(ident.Webhook, filter.WebhookID))
		}
		if filter.EventID != "" {
			require.True(t, ident.Valid(ident.Event, filter.EventID))
		}
		if filter.EventType != "" {
			require.NoError(t, webhookrule.ValidateType(filter.EventType))
		}
		require.True(t, filter.AccountID != "" || filter.WebhookID != "" || filter.State == store.StateDead)
		if filter.CreatedAfter != nil && filter.CreatedBefore != nil {
			require.True(t, filter.CreatedAfter.Before(*filter.CreatedBefore))
		}
		if after != nil {
			require.True(t, ident.Valid(ident.Delivery, after.ID))
			again, err := store.ParseDeliveryCursor(after.String())
			require.NoError(t, err)
			require.Equal(t, *after, *again)
		}

		query, args, err := store.DeliveryListQuery(filter, after, limit+1)
		require.NoError(t, err)
		for _, v := range []string{filter.AccountID, filter.WebhookID, filter.EventID, filter.EventType} {
			if v != "" {
				require.Contains(t, args, any(v), "value %q is not a query parameter", v)
			}
		}
		require.NotContains(t, query, "acct_bound", "a value was written into the SQL")
	})
}

// FuzzDeliveryCursor decodes arbitrary cursors: anything accepted is a
// delivery id and a time in PostgreSQL's range that encodes back to a cursor
// meaning the same position.
func FuzzDeliveryCursor(f *testing.F) {
	dlv := ident.New(ident.Delivery)
	for _, seed := range []string{
		store.DeliveryCursor{CreatedAt: time.Unix(1767225600, 123456000), ID: dlv}.String(),
		base64.RawURLEncoding.EncodeToString([]byte("0." + dlv)),
		base64.RawURLEncoding.EncodeToString([]byte("+0001." + dlv)),
		base64.RawURLEncoding.EncodeToString([]byte("253402300799999999." + dlv)),
		base64.RawURLEncoding.EncodeToString([]byte("1.2." + dlv)),
		base64.StdEncoding.EncodeToString([]byte("1." + dlv)),
		"", "====", "%%%",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := store.ParseDeliveryCursor(s)
		if err != nil {
			require.ErrorIs(t, err, store.ErrInvalidCursor)
			return
		}
		require.True(t, ident.Valid(ident.Delivery, c.ID))
		require.False(t, c.CreatedAt.Before(time.Unix(0, 0)))
		require.Less(t, c.CreatedAt.Year(), 10000)
		again, err := store.ParseDeliveryCursor(c.String())
		require.NoError(t, err)
		require.Equal(t, *c, *again)
		require.Equal(t, c.String(), again.String())
	})
}

// FuzzPageCursor does the same for the other lists' limit and cursor.
func FuzzPageCursor(f *testing.F) {
	wh := ident.New(ident.Webhook)
	for _, seed := range []string{
		"limit=1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(wh)),
		"cursor=" + base64.StdEncoding.EncodeToString([]byte(wh)),
		"limit=1001", "limit=", "limit=%2B5", "limit=0x10", "cursor=", "cursor=" + wh,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		pg, apiErr := parsePage(q, ident.Webhook)
		if apiErr != nil {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, apiErr.Status)
			require.True(t, slices.Contains([]string{"limit", "cursor"}, apiErr.Field), apiErr.Field)
			return
		}
		require.GreaterOrEqual(t, pg.limit, 1)
		require.LessOrEqual(t, pg.limit, LimitMax)
		if pg.before != "" {
			require.True(t, ident.Valid(ident.Webhook, pg.before))
			require.False(t, strings.ContainsAny(pg.before, "'\"\\\x00"))
			// newPage hands out exactly the cursor that leads here.
			rows := []string{"x", pg.before, "y"}
			out := newPage(rows, page{limit: 2}, func(s string) string { return s })
			again, apiErr := parsePage(url.Values{"cursor": {out.NextCursor}}, ident.Webhook)
			require.Nil(t, apiErr)
			require.Equal(t, pg.before, again.before)
		}
	})
}
