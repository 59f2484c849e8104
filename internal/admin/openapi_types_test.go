package admin

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mono/webhookd/apitype"
)

// schemaType ties a schema of internal/admin/openapi.json to the apitype type the
// API encodes or decodes for it.
type schemaType struct {
	schema string
	typ    reflect.Type
	// request: a body the API reads. Its required list and nullability are
	// decided by the handler's checks, not by the type, so only names and
	// JSON types are compared.
	request bool
	// omit are the type's omitempty fields this schema leaves out (a
	// listing's delivery has no attempts; a listed key no key).
	omit []string
	// always are omitempty fields this schema's answer always has (the
	// key in the answer that created it).
	always []string
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// schemaTypes is every schema that is an apitype type.
var schemaTypes = []schemaType{
	{schema: "Attempt", typ: typeOf[apitype.Attempt]()},
	{schema: "Replay", typ: typeOf[apitype.Replay]()},
	{schema: "DeliverySummary", typ: typeOf[apitype.Delivery](), omit: []string{"attempts", "replays"}},
	{schema: "Delivery", typ: typeOf[apitype.Delivery](), always: []string{"attempts", "replays"}},
	{schema: "DeliveryPage", typ: typeOf[apitype.Page[apitype.Delivery]]()},
	{schema: "BulkReplay", typ: typeOf[apitype.BulkReplay](), request: true},
	{schema: "ReplayBatch", typ: typeOf[apitype.ReplayBatch]()},
	{schema: "EventCreate", typ: typeOf[apitype.EventCreate](), request: true},
	{schema: "EventBatch", typ: typeOf[apitype.EventBatch](), request: true},
	{schema: "EventAccepted", typ: typeOf[apitype.Enqueued]()},
	{schema: "EventDeliveryRef", typ: typeOf[apitype.EnqueuedDelivery]()},
	{schema: "EventBatchItem", typ: typeOf[apitype.EventBatchItem]()},
	{schema: "EventBatchAccepted", typ: typeOf[apitype.List[apitype.EventBatchItem]]()},
	{schema: "Event", typ: typeOf[apitype.Event]()},
	{schema: "EventType", typ: typeOf[apitype.EventType]()},
	{schema: "EventTypeList", typ: typeOf[apitype.List[apitype.EventType]]()},
	{schema: "EventTypeCreate", typ: typeOf[apitype.EventTypeCreate](), request: true},
	{schema: "EventTypePatch", typ: typeOf[apitype.EventTypePatch](), request: true},
	{schema: "Key", typ: typeOf[apitype.Key](), omit: []string{"key"}},
	{schema: "KeyCreated", typ: typeOf[apitype.Key](), always: []string{"key"}},
	{schema: "KeyPage", typ: typeOf[apitype.Page[apitype.Key]]()},
	{schema: "KeyCreate", typ: typeOf[apitype.KeyCreate](), request: true},
	{schema: "KeyRotate", typ: typeOf[apitype.KeyRotate](), request: true},
	{schema: "KeyRotated", typ: typeOf[apitype.KeyRotated](), always: []string{"key"}},
	{schema: "Webhook", typ: typeOf[apitype.Webhook](), omit: []string{"secret"}},
	{schema: "WebhookCreated", typ: typeOf[apitype.Webhook](), always: []string{"secret"}},
	{schema: "WebhookPage", typ: typeOf[apitype.Page[apitype.Webhook]]()},
	{schema: "WebhookSecret", typ: typeOf[apitype.WebhookSecret]()},
	{schema: "WebhookTLS", typ: typeOf[apitype.WebhookTLS]()},
	{schema: "WebhookOAuth", typ: typeOf[apitype.WebhookOAuth]()},
	{schema: "WebhookFIFO", typ: typeOf[apitype.WebhookFIFO]()},
	{schema: "WebhookHealth", typ: typeOf[apitype.WebhookHealth]()},
	{schema: "TestSendRequest", typ: typeOf[apitype.TestSendRequest](), request: true},
	{schema: "WebhookCreate", typ: typeOf[apitype.WebhookCreate](), request: true},
	{schema: "WebhookPatch", typ: typeOf[apitype.WebhookPatch](), request: true},
	{schema: "WebhookTLSSetting", typ: typeOf[apitype.WebhookTLSSetting](), request: true},
	{schema: "WebhookOAuthSetting", typ: typeOf[apitype.WebhookOAuthSetting](), request: true},
	{schema: "TestSendResult", typ: typeOf[apitype.TestSend]()},
	{schema: "Limits", typ: typeOf[apitype.Limits]()},
	{schema: "RateLimit", typ: typeOf[apitype.RateLimit]()},
	{schema: "PortalLinkCreate", typ: typeOf[apitype.PortalLinkCreate](), request: true},
	{schema: "PortalLinkCreated", typ: typeOf[apitype.PortalLink]()},
	{schema: "PortalLinksRevoked", typ: typeOf[apitype.PortalLinksRevoked]()},
}

// schemasNotInAPIType are the schemas that are not (yet) an apitype type,
// and why. A new schema must go in one list or the other.
var schemasNotInAPIType = map[string]string{
	"Error":      "the error body: admin's Error (errors.go) writes it",
	"BatchError": "the batch error body: admin's batchError (events.go) writes it",
	"Health":     "GET /healthz: a fixed {\"status\":\"ok\"}",
	"Ready":      "GET /readyz: admin's readyResponse (health.go)",
	"NextCursor": "a string, part of every page",
}

// Every schema of internal/admin/openapi.json that is an apitype type agrees with
// it field by field: the same property names; JSON types that the Go types
// encode to (date-time for time.Time); for answers, nullable exactly where
// the field is a pointer, and required exactly where the field is always
// written (no omitempty). Nested objects and arrays of objects are checked
// the same way, so the hand-written document can't drift from the types.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	doc := parseOpenAPI(t)
	schemas := make(map[string]map[string]any, len(doc.Components.Schemas))
	for name, raw := range doc.Components.Schemas {
		var s map[string]any
		require.NoError(t, json.Unmarshal(raw, &s), name)
		schemas[name] = s
	}

	var unclassified []string
	for name := range schemas {
		_, other := schemasNotInAPIType[name]
		if !other && !slices.ContainsFunc(schemaTypes, func(st schemaType) bool { return st.schema == name }) {
			unclassified = append(unclassified, name)
		}
	}
	sort.Strings(unclassified)
	require.Empty(t, unclassified, "schemas neither in schemaTypes nor in schemasNotInAPIType")

	for _, st := range schemaTypes {
		t.Run(st.schema, func(t *testing.T) {
			t.Parallel()
			s, ok := schemas[st.schema]
			require.True(t, ok, "no schema %s in admin/openapi.json", st.schema)
			c := &schemaCheck{schemas: schemas, request: st.request}
			c.object(st.schema, resolve(schemas, s), st.typ, st.omit, st.always)
			require.Empty(t, c.problems, "internal/admin/openapi.json's %s and apitype's %s disagree", st.schema, st.typ)
		})
	}
}

// schemaCheck collects what differs between schemas and types.
type schemaCheck struct {
	schemas  map[string]map[string]any
	request  bool
	problems []string
}

func (c *schemaCheck) fail(path, format string, args ...any) {
	c.problems = append(c.problems, path+": "+fmt.Sprintf(format, args...))
}

// jsonField is one field of a type as encoding/json writes it.
type jsonField struct {
	name      string
	typ       reflect.Type
	omitEmpty bool
}

// jsonFields lists typ's JSON fields, those of embedded structs included.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		out = append(out, jsonField{name: name, typ: f.Type, omitEmpty: omit})
	}
	return out
}

// resolve follows $ref and merges allOf into one object schema.
func resolve(schemas map[string]map[string]any, s map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		return resolve(schemas, schemas[strings.TrimPrefix(ref, "#/components/schemas/")])
	}
	all, ok := s["allOf"].([]any)
	if !ok {
		return s
	}
	merged := map[string]any{"type": "object", "properties": map[string]any{}, "required": []any{}}
	for k, v := range s {
		if k != "allOf" {
			merged[k] = v
		}
	}
	for _, part := range all {
		p := resolve(schemas, part.(map[string]any))
		for name, prop := range asMap(p["properties"]) {
			merged["properties"].(map[string]any)[name] = prop
		}
		req, _ := p["required"].([]any)
		merged["required"] = append(merged["required"].([]any), req...)
	}
	return merged
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
	// nullIntType is a whole number or null (its own JSON methods).
	nullIntType = reflect.TypeFor[apitype.NullableInt]()
)

// object compares an object schema with a struct type.
func (c *schemaCheck) object(path string, s map[string]any, typ reflect.Type, omit, always []string) {
	if typ.Kind() != reflect.Struct {
		c.fail(path, "schema is an object, Go type %s is not a struct", typ)
		return
	}
	props := asMap(s["properties"])
	required := map[string]bool{}
	req, _ := s["required"].([]any)
	for _, r := range req {
		required[r.(string)] = true
	}
	page := strings.HasPrefix(typ.Name(), "Page[")
	seen := map[string]bool{}
	for _, f := range jsonFields(typ) {
		if slices.Contains(omit, f.name) {
			continue
		}
		seen[f.name] = true
		fp := path + "." + f.name
		prop, ok := props[f.name]
		if !ok {
			c.fail(fp, "field of %s missing from the schema", typ)
			continue
		}
		// A nil pointer is written null, or left out with omitempty.
		nullable := (f.typ.Kind() == reflect.Pointer && !f.omitEmpty) || (page && f.name == "next_cursor")
		c.value(fp, prop.(map[string]any), f.typ, nullable)
		if c.request {
			continue
		}
		always := !f.omitEmpty || slices.Contains(always, f.name)
		if always && !required[f.name] {
			c.fail(fp, "always written, not in required")
		}
		if !always && required[f.name] {
			c.fail(fp, "required, but omitted when empty (omitempty)")
		}
	}
	for name := range props {
		if !seen[name] {
			c.fail(path+"."+name, "in the schema, not a field of %s", typ)
		}
	}
}

// value compares a property schema with a field's type.
func (c *schemaCheck) value(path string, raw map[string]any, typ reflect.Type, nullable bool) {
	if c.checkRef(path, raw, typ) {
		return
	}
	s := resolve(c.schemas, raw)
	if !c.request {
		schemaNullable, _ := s["nullable"].(bool)
		if n, ok := raw["nullable"].(bool); ok {
			schemaNullable = n
		}
		if nullable != schemaNullable {
			c.fail(path, "nullable is %t in the schema, Go type %s", schemaNullable, typ)
		}
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == rawType {
		return // any JSON value
	}
	got, _ := s["type"].(string)
	want := ""
	switch {
	case typ == timeType:
		want = "string"
		if s["format"] != "date-time" {
			c.fail(path, "time.Time without format date-time")
		}
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64, typ == nullIntType:
		want = "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Slice:
		want = "array"
	case typ.Kind() == reflect.Map || typ.Kind() == reflect.Struct:
		want = "object"
	}
	if got != want {
		c.fail(path, "type %q in the schema, Go type %s encodes to %q", got, typ, want)
		return
	}
	switch {
	case typ.Kind() == reflect.Struct && typ != timeType && typ != nullIntType:
		c.object(path, s, typ, nil, nil)
	case typ.Kind() == reflect.Slice:
		if items := asMap(s["items"]); items != nil && !c.checkRef(path+"[]", items, typ.Elem()) {
			c.value(path+"[]", items, typ.Elem(), false)
		}
	}
}

// checkRef reports whether raw is a $ref to a schema of schemaTypes (which
// is checked on its own), and fails when that schema's type is not typ.
func (c *schemaCheck) checkRef(path string, raw map[string]any, typ reflect.Type) bool {
	ref, ok := raw["$ref"].(string)
	if !ok {
		return false
	}
	name := strings.TrimPrefix(ref, "#/components/schemas/")
	i := slices.IndexFunc(schemaTypes, func(st schemaType) bool { return st.schema == name })
	if i < 0 {
		return false
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ == rawType {
		return true // read raw, then as the schema's type one by one
	}
	if schemaTypes[i].typ != typ {
		c.fail(path, "refers to %s (%s), Go type %s", name, schemaTypes[i].typ, typ)
	}
	return true
}
