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
	"github.com/mono/webhookd/internal/catalogue"
	"github.com/mono/webhookd/internal/engine"
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

// The event catalogue's operations: GET /v1/event-types and GET
// /v1/event-types/{type} for every key but portal:write, POST and PATCH
// for admin keys. The JSON API (routes) and the dashboard call them.
var (
	opListEventTypes  = &opSpec{route: "GET /v1/event-types", scopes: scopesEvents, budget: budgetManagement}
	opGetEventType    = &opSpec{route: "GET /v1/event-types/{type}", scopes: scopesEvents, budget: budgetManagement}
	opCreateEventType = &opSpec{route: "POST /v1/event-types", scopes: scopesAdmin, budget: budgetManagement}
	opUpdateEventType = &opSpec{route: "PATCH /v1/event-types/{type}", scopes: scopesAdmin, budget: budgetManagement}
)

// ListEventTypes is the whole catalogue, deprecated types included, by
// name (GET /v1/event-types).
func (a *API) ListEventTypes(ctx context.Context, p *Principal, _ *apitype.EventTypeList) (*apitype.EventTypes, error) {
	if e := a.admit(ctx, p, opListEventTypes); e != nil {
		return nil, e
	}
	types, err := store.ListEventTypes(ctx, a.pool)
	if err != nil {
		return nil, a.internal("error listing event types", err)
	}
	out := &apitype.EventTypes{Data: make([]apitype.EventType, len(types))}
	for i, et := range types {
		out.Data[i] = renderEventType(et)
	}
	return out, nil
}

// decodeEventTypeList refuses any query parameter on GET /v1/event-types.
func decodeEventTypeList(_ http.ResponseWriter, r *http.Request, _ *apitype.EventTypeList) *Error {
	_, apiErr := queryParams(r)
	return apiErr
}

// checkEventTypeName is a 404 when name can't be an event type name.
func checkEventTypeName(name string) *Error {
	if webhookrule.ValidateType(name) != nil {
		return errEventTypeNotFound()
	}
	return nil
}

func errEventTypeNotFound() *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Field: "type", Message: "event type not found"}
}

// GetEventType is one entry of the catalogue (GET
// /v1/event-types/{type}); unknown: 404.
func (a *API) GetEventType(ctx context.Context, p *Principal, req *apitype.EventTypeGet) (*apitype.EventType, error) {
	if e := a.admit(ctx, p, opGetEventType); e != nil {
		return nil, e
	}
	name := req.Type
	if e := checkEventTypeName(name); e != nil {
		return nil, e
	}
	et, err := store.GetEventType(ctx, a.pool, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errEventTypeNotFound()
	}
	if err != nil {
		return nil, a.internal("error loading event type", err, zap.String("event_type", name))
	}
	out := renderEventType(et)
	return &out, nil
}

// decodeEventTypeGet reads the path's {type}, a 404 when it can't be an
// event type name.
func decodeEventTypeGet(_ http.ResponseWriter, r *http.Request, req *apitype.EventTypeGet) *Error {
	req.Type = r.PathValue("type")
	return checkEventTypeName(req.Type)
}

// CreateEventType registers an event type (POST /v1/event-types, admin
// keys only; HTTP 201). The schema must compile and the example must
// match it; a type already registered is a 409.
func (a *API) CreateEventType(ctx context.Context, p *Principal, req *apitype.EventTypeCreate) (*apitype.EventType, error) {
	if e := a.admit(ctx, p, opCreateEventType); e != nil {
		return nil, e
	}
	if err := webhookrule.ValidateType(req.Type); err != nil {
		return nil, validationError(err)
	}
	if apiErr := checkDescription(req.Description); apiErr != nil {
		return nil, apiErr
	}
	if isAbsent(req.Schema) {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "schema", Message: "schema is required: a JSON Schema (draft 2020-12) for the event's data"}
	}
	if isAbsent(req.Example) {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "missing_field", Field: "example", Message: "example is required: an example of the event's data, matching the schema"}
	}
	now := a.now().UTC().Truncate(time.Microsecond)
	et := &store.EventType{Type: req.Type, Description: req.Description, Validate: req.Validate, CreatedAt: now, UpdatedAt: now}
	if apiErr := setSchemaAndExample(et, req.Schema, req.Example); apiErr != nil {
		return nil, apiErr
	}
	if err := store.InsertEventType(ctx, a.pool, et); err != nil {
		if errors.Is(err, store.ErrDuplicateEventType) {
			return nil, &Error{Status: http.StatusConflict, Code: "event_type_exists", Field: "type", Message: "the event type " + et.Type + " is already registered; change it with PATCH /v1/event-types/" + et.Type}
		}
		return nil, a.internal("error inserting event type", err, zap.String("event_type", et.Type))
	}
	a.catalogue.Invalidate()
	a.logger.Info("event type registered", zap.String("event_type", et.Type), zap.Bool("validate", et.Validate))
	out := renderEventType(et)
	return &out, nil
}

// UpdateEventType changes an event type (PATCH /v1/event-types/{type},
// admin keys only): description, schema, example, validation,
// deprecation. The example must match the schema after the change.
func (a *API) UpdateEventType(ctx context.Context, p *Principal, req *apitype.EventTypePatch) (*apitype.EventType, error) {
	if e := a.admit(ctx, p, opUpdateEventType); e != nil {
		return nil, e
	}
	name := req.Type
	if e := checkEventTypeName(name); e != nil {
		return nil, e
	}
	if req.Description != nil {
		if apiErr := checkDescription(*req.Description); apiErr != nil {
			return nil, apiErr
		}
	}

	var et *store.EventType
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if et, err = store.GetEventTypeForUpdate(ctx, tx, name); err != nil {
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
		return store.UpdateEventType(ctx, tx, et)
	})
	var bad *Error
	switch {
	case errors.As(err, &bad):
		return nil, bad
	case errors.Is(err, store.ErrNotFound):
		return nil, errEventTypeNotFound()
	case err != nil:
		return nil, a.internal("error updating event type", err, zap.String("event_type", name))
	}
	a.catalogue.Invalidate()
	a.logger.Info("event type updated", zap.String("event_type", et.Type), zap.Bool("validate", et.Validate), zap.Bool("deprecated", et.DeprecatedAt != nil))
	out := renderEventType(et)
	return &out, nil
}

// decodeEventTypePatch reads PATCH /v1/event-types/{type}: the path's
// type (404 when it can't be one), then the body.
func decodeEventTypePatch(w http.ResponseWriter, r *http.Request, req *apitype.EventTypePatch) *Error {
	req.Type = r.PathValue("type")
	if e := checkEventTypeName(req.Type); e != nil {
		return e
	}
	return decodeJSON(w, r, SmallBodyLimit, req)
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
func (a *API) checkEventData(ctx context.Context, ev *engine.Event) *Error {
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
