package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/catalogue"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// FuzzEventRequest decodes arbitrary POST /v1/events bodies the way the
// route does (decodeJSON, the account rules, engine.Validate) and
// assembles the envelope of whatever is accepted. A refusal is a 400, 403,
// 413 or 422 with a code; an accepted event's envelope is valid JSON whose
// event.data is the request's data compacted byte for byte and decodes to
// the same value, and whose type is the request's type. The same body as
// one item of a batch is accepted or refused alike.
func FuzzEventRequest(f *testing.F) {
	for _, seed := range []string{
		`{"account_id":"acct_1","type":"bank_transfer_approved","data":{"amount":240000,"currency":"COP"}}`,
		`{"account_id":"acct_1","type":"a","data":{"html":"<b>&amp;</b>","ü":"\u00fc\ud83d\ude00"},"idempotency_key":"k-1"}`,
		` {"type":"a","data":{"n":1e400}} `,
		`{"account_id":"acct_1","type":"a","data":{"a":1,"a":2},"data":{"b":3}}`,
		`{"account_id":"acct_1","type":"a","data":[1]}`,
		`{"account_id":"acct_1","type":"a","data":null}`,
		`{"account_id":"acct_1","type":"a","data":{},"extra":1}`,
		`{"account_id":1}`, `null`, `[]`, `{`, `{}{}`, ``, "{\"data\":{\"s\":\"\xff\"},\"type\":\"a\",\"account_id\":\"b\"}",
		`{"account_id":"acct_1","type":"a","data":{"k":"v"},"idempotency_key":"\u0000"}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, bound bool) {
		p := &Principal{KeyID: "key_fuzz", Scope: store.ScopeAdmin}
		if bound {
			p = &Principal{KeyID: "key_fuzz", Scope: store.ScopeAccount, AccountID: "acct_bound"}
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		r = r.WithContext(context.WithValue(context.Background(), principalKey{}, p))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()

		a := fuzzAPI()
		ev, apiErr := a.decodeEvent(w, r)
		var batchEv *engine.Event
		var fail *batchItemFail
		if json.Valid(body) {
			batchEv, fail = a.batchItem(r, json.RawMessage(body))
		}
		if apiErr != nil {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}, apiErr.Status, "%+v", apiErr)
			require.NotEmpty(t, apiErr.Code)
			if json.Valid(body) {
				require.NotNil(t, fail, "refused alone (%s) but accepted in a batch", apiErr.Code)
				require.Equal(t, apiErr.Status, fail.status)
			}
			return
		}
		require.Nil(t, fail, "accepted alone but refused in a batch: %+v", fail)
		require.Equal(t, ev, batchEv)
		if bound {
			require.Equal(t, "acct_bound", ev.AccountID)
		}

		occurred := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		env, err := webhookrule.Envelope(ev.Type, ev.Data, occurred)
		require.NoError(t, err)
		var parsed struct {
			Event struct {
				Data json.RawMessage `json:"data"`
				Type string          `json:"type"`
			} `json:"event"`
			Timestamp string `json:"timestamp"`
		}
		require.NoError(t, json.Unmarshal(env, &parsed), "%q", env)
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, ev.Data))
		require.Equal(t, compact.Bytes(), []byte(parsed.Event.Data))
		require.Equal(t, ev.Type, parsed.Event.Type)
		require.Equal(t, "2026-01-02T03:04:05.000006Z", parsed.Timestamp)

		require.Equal(t, decodeAny(t, ev.Data), decodeAny(t, parsed.Event.Data))
	})
}

// decodeEvent is createEvent up to the point where it touches the
// database: decode, the account, validation, the catalogue's check.
func (a *API) decodeEvent(w http.ResponseWriter, r *http.Request) (*engine.Event, *Error) {
	var req apitype.EventCreate
	if apiErr := decodeJSON(w, r, EventBodyLimit, &req); apiErr != nil {
		return nil, apiErr
	}
	_, _ = io.Copy(io.Discard, r.Body)
	accountID, apiErr := accountFor(r, &req.AccountID)
	if apiErr != nil {
		return nil, apiErr
	}
	ev := &engine.Event{AccountID: accountID, Type: req.Type, Data: req.Data, IdempotencyKey: req.IdempotencyKey, Traceparent: req.Traceparent}
	if err := engine.Validate(ev); err != nil {
		return nil, validationError(err)
	}
	if apiErr := a.checkEventData(r.Context(), ev); apiErr != nil {
		return nil, apiErr
	}
	return ev, nil
}

// fuzzAPI is an API with an empty event catalogue (no type validates its
// data) and no database behind it.
func fuzzAPI() *API {
	return &API{logger: zap.NewNop(), catalogue: catalogue.New(noRows{}, nil)}
}

// noRows is a database with no rows at all.
type noRows struct{}

func (noRows) Begin(context.Context) (pgx.Tx, error) { return nil, errors.New("no database") }
func (noRows) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errors.New("no database")
}
func (noRows) Query(context.Context, string, ...any) (pgx.Rows, error) { return emptyRows{}, nil }
func (noRows) QueryRow(context.Context, string, ...any) pgx.Row        { return emptyRows{} }

// emptyRows is a result without rows. The pgx.Rows it embeds is nil: the
// methods it doesn't define are never called on an empty result.
type emptyRows struct{ pgx.Rows }

func (emptyRows) Close()                        {}
func (emptyRows) Err() error                    { return nil }
func (emptyRows) CommandTag() pgconn.CommandTag { return pgconn.CommandTag{} }
func (emptyRows) Next() bool                    { return false }
func (emptyRows) Scan(...any) error             { return pgx.ErrNoRows }

// decodeAny decodes JSON keeping numbers as written (1e400 is valid JSON
// but no float64).
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}
