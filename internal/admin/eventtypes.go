package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/internal/catalogue"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

func renderEventType(et *store.EventType) apitype.EventType {
	return apitype.EventType{
		Type: et.Type, Description: et.Description, Schema: et.Schema, Example: et.Example,
		Validate: et.Validate, Deprecated: et.DeprecatedAt != nil, DeprecatedAt: et.DeprecatedAt,
		CreatedAt: et.CreatedAt, UpdatedAt: et.UpdatedAt,
	}
}

// listEventTypes is GET /v1/event-types: the whole catalogue, deprecated
// types included, by name.
func (a *API) listEventTypes(w http.ResponseWriter, r *http.Request) {
	if _, apiErr := queryParams(r); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	types, err := store.ListEventTypes(r.Context(), a.pool)
	if err != nil {
		a.logger.Error("error listing event types", zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	out := make([]apitype.EventType, len(types))
	for i, et := range types {
		out[i] = renderEventType(et)
	}
	writeJSON(w, http.StatusOK, map[string][]apitype.EventType{"data": out})
}

// pathEventType returns the request's {type}, or a 404 when it can't be an
// event type name.
func pathEventType(r *http.Request) (string, *Error) {
	name := r.PathValue("type")
	if webhookrule.ValidateType(name) != nil {
		return "", errEventTypeNotFound()
	}
	return name, nil
}

func errEventTypeNotFound() *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Field: "type", Message: "event type not found"}
}

func (a *API) getEventType(w http.ResponseWriter, r *http.Request) {
	name, apiErr := pathEventType(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	et, err := store.GetEventType(r.Context(), a.pool, name)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errEventTypeNotFound())
		return
	}
	if err != nil {
		a.logger.Error("error loading event type", zap.String("event_type", name), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	writeJSON(w, http.StatusOK, renderEventType(et))
}

// createEventType registers an event type (admin only). The schema must
// compile and the example must match it.
func (a *API) createEventType(w http.ResponseWriter, r *http.Request) {
	var req apitype.EventTypeCreate
	if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if err := webhookrule.ValidateType(req.Type); err != nil {
		writeError(w, validationError(err))
		return
	}
	if apiErr := checkDescription(req.Description); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if isAbsent(req.Schema) {
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "schema", Message: "schema is required: a JSON Schema (draft 2020-12) for the event's data"})
		return
	}
	if isAbsent(req.Example) {
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "example", Message: "example is required: an example of the event's data, matching the schema"})
		return
	}
	now := a.now().UTC().Truncate(time.Microsecond)
	et := &store.EventType{Type: req.Type, Description: req.Description, Validate: req.Validate, CreatedAt: now, UpdatedAt: now}
	if apiErr := setSchemaAndExample(et, req.Schema, req.Example); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if err := store.InsertEventType(r.Context(), a.pool, et); err != nil {
		if errors.Is(err, store.ErrDuplicateEventType) {
			writeError(w, &Error{Status: http.StatusConflict, Code: "event_type_exists", Field: "type", Message: "the event type " + et.Type + " is already registered; change it with PATCH /v1/event-types/" + et.Type})
			return
		}
		a.logger.Error("error inserting event type", zap.String("event_type", et.Type), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.catalogue.Invalidate()
	a.logger.Info("event type registered", zap.String("event_type", et.Type), zap.Bool("validate", et.Validate))
	writeJSON(w, http.StatusCreated, renderEventType(et))
}

// updateEventType changes an event type (admin only): description, schema,
// example, validation, deprecation. The example must match the schema
// after the change.
func (a *API) updateEventType(w http.ResponseWriter, r *http.Request) {
	name, apiErr := pathEventType(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var req apitype.EventTypePatch
	if apiErr := decodeJSON(w, r, SmallBodyLimit, &req); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if req.Description != nil {
		if apiErr := checkDescription(*req.Description); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	}

	var et *store.EventType
	err := a.inTx(r.Context(), func(tx pgx.Tx) error {
		var err error
		if et, err = store.GetEventTypeForUpdate(r.Context(), tx, name); err != nil {
			return err
		}
		if req.Description != nil {
			et.Description = *req.Description
		}
		if req.Validate != nil {
			et.Validate = *req.Validate
		}
		if req.Deprecated != nil {
			switch {
			case *req.Deprecated && et.DeprecatedAt == nil:
				now := a.now().UTC().Truncate(time.Microsecond)
				et.DeprecatedAt = &now
			case !*req.Deprecated:
				et.DeprecatedAt = nil
			}
		}
		schema, example := req.Schema, req.Example
		if isAbsent(schema) {
			schema = et.Schema
		}
		if isAbsent(example) {
			example = et.Example
		}
		if apiErr := setSchemaAndExample(et, schema, example); apiErr != nil {
			return apiErr
		}
		et.UpdatedAt = a.now().UTC().Truncate(time.Microsecond)
		return store.UpdateEventType(r.Context(), tx, et)
	})
	var bad *Error
	switch {
	case errors.As(err, &bad):
		writeError(w, bad)
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, errEventTypeNotFound())
		return
	case err != nil:
		a.logger.Error("error updating event type", zap.String("event_type", name), zap.Error(err))
		writeError(w, errInternal(err))
		return
	}
	a.catalogue.Invalidate()
	a.logger.Info("event type updated", zap.String("event_type", et.Type), zap.Bool("validate", et.Validate), zap.Bool("deprecated", et.DeprecatedAt != nil))
	writeJSON(w, http.StatusOK, renderEventType(et))
}

// inTx runs fn in a transaction, committed when fn returns nil.
func (a *API) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// isAbsent reports whether a raw JSON field was left out or null.
func isAbsent(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || string(trimmed) == "null"
}

// setSchemaAndExample checks that schema compiles and example (a JSON
// object, like an event's data) matches it, and stores both compacted.
func setSchemaAndExample(et *store.EventType, schema, example json.RawMessage) *Error {
	compiled, err := catalogue.Compile(schema)
	if err != nil {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_schema", Field: "schema", Message: err.Error()}
	}
	if webhookrule.ValidateData(example) != nil {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_example", Field: "example", Message: "example must be a JSON object, like an event's data"}
	}
	if err := catalogue.Check(compiled, example); err != nil {
		var m *catalogue.MismatchError
		if !errors.As(err, &m) {
			return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_example", Field: "example", Message: err.Error()}
		}
		path := "example" + strings.TrimPrefix(m.Path, "data")
		return &Error{Status: http.StatusUnprocessableEntity, Code: "example_mismatch", Field: path, Message: "the example does not match the schema at " + path + ": " + m.Message}
	}
	var s, e bytes.Buffer
	if err := json.Compact(&s, schema); err != nil {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_schema", Field: "schema", Message: "schema is not valid JSON"}
	}
	if err := json.Compact(&e, example); err != nil {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_example", Field: "example", Message: "example is not valid JSON"}
	}
	et.Schema, et.Example = s.Bytes(), e.Bytes()
	return nil
}

// checkEventData validates an event's data against its type's schema when
// the catalogue says so: 422 data_schema_mismatch with the failing path
// (data.amount, data.items[0].sku) as the field.
func (a *API) checkEventData(ctx context.Context, ev *dispatcher.Event) *Error {
	if a == nil || a.catalogue == nil {
		return nil // no catalogue (a decoding-only API in tests): nothing to check
	}
	err := a.catalogue.Validate(ctx, ev.Type, ev.Data)
	if err == nil {
		return nil
	}
	var m *catalogue.MismatchError
	if errors.As(err, &m) {
		return &Error{Status: http.StatusUnprocessableEntity, Code: "data_schema_mismatch", Field: m.Path,
			Message: "data does not match the schema of event type " + ev.Type + " at " + m.Path + ": " + m.Message}
	}
	a.logger.Error("error validating event data", zap.String("event_type", ev.Type), zap.Error(err))
	return errInternal(err)
}
