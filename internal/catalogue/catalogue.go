// Package catalogue is the event catalogue's schema side: it compiles the
// JSON Schema registered for an event type's data, and validates the data
// of events whose type has validation on, from an in-memory cache.
//
// Schemas are JSON Schema draft 2020-12 (or the draft their "$schema"
// names: 4, 6, 7, 2019-09), compiled with
// github.com/santhosh-tekuri/jsonschema/v6. A schema must be self-contained:
// "$ref" may point inside the document only, never at a file or a URL.
// "format" is an annotation, not an assertion.
//
// The hot path is cheap: Validate looks the type up in a map of compiled
// schemas holding only the types with validation on. The map is reloaded
// with one small query at most every RefreshInterval (and at once after a
// change made through Invalidate), so when no type validates, an event
// costs no query at all; other processes see a change within
// RefreshInterval.
package catalogue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.uber.org/zap"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/mono/webhookd/internal/store"
)

// RefreshIntervalDefault is how long a loaded set of schemas is used before
// it is reloaded.
const RefreshIntervalDefault = 10 * time.Second

// MismatchError says where and why an event's data does not match its
// type's schema.
type MismatchError struct {
	// Path is the failing location in the event body's terms: "data" for
	// the object itself, "data.amount", "data.items[0].sku".
	Path string
	// Message says what the schema wanted.
	Message string
}

func (e *MismatchError) Error() string {
	return e.Path + ": " + e.Message
}

// SchemaError is a schema that can't be compiled.
type SchemaError struct {
	Message string
}

func (e *SchemaError) Error() string { return "invalid JSON Schema: " + e.Message }

// Config configures a Catalogue.
type Config struct {
	// RefreshInterval is how long loaded schemas are trusted. Defaults to
	// RefreshIntervalDefault.
	RefreshInterval time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
}

// Catalogue validates event data against the schemas of the types that
// have validation on. It is safe for concurrent use.
type Catalogue struct {
	db       store.DB
	interval time.Duration
	now      func() time.Time
	logger   *zap.Logger

	snap   atomic.Pointer[snapshot]
	loadMu sync.Mutex
	loads  atomic.Int64
}

// snapshot is one load of the validating types.
type snapshot struct {
	loadedAt time.Time
	schemas  map[string]*compiled
}

type compiled struct {
	updatedAt time.Time
	schema    *jsonschema.Schema
}

// New returns a Catalogue reading event types from db.
func New(db store.DB, cfg *Config) *Catalogue {
	if cfg == nil {
		cfg = &Config{}
	}
	c := &Catalogue{db: db, interval: cfg.RefreshInterval, now: cfg.Now, logger: cfg.Logger}
	if c.interval <= 0 {
		c.interval = RefreshIntervalDefault
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	return c
}

// Loads is how many times the schemas have been loaded from the database.
func (c *Catalogue) Loads() int64 { return c.loads.Load() }

// Invalidate makes the next Validate reload the schemas: call it after
// changing an event type.
func (c *Catalogue) Invalidate() {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if s := c.snap.Load(); s != nil {
		c.snap.Store(&snapshot{schemas: s.schemas}) // loadedAt zero: stale
	}
}

// Validate checks data (one JSON object) against eventType's schema when
// that type has validation on, and returns a *MismatchError when it does
// not match. A type without validation, or not in the catalogue, passes.
func (c *Catalogue) Validate(ctx context.Context, eventType string, data []byte) error {
	s, err := c.snapshot(ctx)
	if err != nil {
		return err
	}
	sch, ok := s.schemas[eventType]
	if !ok {
		return nil
	}
	return Check(sch.schema, data)
}

// snapshot returns fresh enough schemas, reloading them when stale. Only
// one caller reloads; the others go on with the previous set meanwhile.
func (c *Catalogue) snapshot(ctx context.Context) (*snapshot, error) {
	s := c.snap.Load()
	if s != nil && c.now().Sub(s.loadedAt) < c.interval {
		return s, nil
	}
	if s != nil && !s.loadedAt.IsZero() {
		// Merely old: whoever reloads, the others needn't wait.
		if !c.loadMu.TryLock() {
			return s, nil
		}
	} else {
		// Never loaded, or invalidated by a change: wait for the reload.
		c.loadMu.Lock()
	}
	defer c.loadMu.Unlock()
	if cur := c.snap.Load(); cur != nil && c.now().Sub(cur.loadedAt) < c.interval {
		return cur, nil
	}
	fresh, err := c.load(ctx, c.snap.Load())
	if err != nil {
		if s != nil {
			// Keep validating with what we have; try again next time.
			c.logger.Warn("error reloading the event catalogue; using the previous schemas", zap.Error(err))
			return s, nil
		}
		return nil, fmt.Errorf("error loading the event catalogue: %w", err)
	}
	c.snap.Store(fresh)
	return fresh, nil
}

// load reads the validating types, compiling only schemas that changed
// since prev.
func (c *Catalogue) load(ctx context.Context, prev *snapshot) (*snapshot, error) {
	c.loads.Add(1)
	loadedAt := c.now()
	types, err := store.ListValidatedEventTypes(ctx, c.db)
	if err != nil {
		return nil, err
	}
	out := &snapshot{loadedAt: loadedAt, schemas: make(map[string]*compiled, len(types))}
	for _, et := range types {
		if prev != nil {
			if old, ok := prev.schemas[et.Type]; ok && old.updatedAt.Equal(et.UpdatedAt) {
				out.schemas[et.Type] = old
				continue
			}
		}
		sch, err := Compile(et.Schema)
		if err != nil {
			// Registration compiles every schema, so this is a schema
			// stored by other means: skip validation rather than refuse
			// every event of the type.
			c.logger.Error("event type schema does not compile; its data is not validated", zap.String("event_type", et.Type), zap.Error(err))
			continue
		}
		out.schemas[et.Type] = &compiled{updatedAt: et.UpdatedAt, schema: sch}
	}
	return out, nil
}

// noLoader refuses every external reference: schemas are self-contained.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("external references are not allowed; keep $ref inside the schema")
}

// schemaURL names every compiled schema; it is never fetched.
const schemaURL = "urn:webhookd:event-type-schema"

// Compile parses and compiles a JSON Schema. Its error is a *SchemaError
// that says what is wrong.
func Compile(schema []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, &SchemaError{Message: "not valid JSON: " + err.Error()}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, &SchemaError{Message: "a schema must be a JSON object"}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, &SchemaError{Message: err.Error()}
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		return nil, &SchemaError{Message: strings.ReplaceAll(err.Error(), schemaURL, "schema")}
	}
	return sch, nil
}

var printer = message.NewPrinter(language.English)

// Check validates data (JSON) against sch and returns a *MismatchError
// naming the first failing location.
func Check(sch *jsonschema.Schema, data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &MismatchError{Path: "data", Message: "not valid JSON"}
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &MismatchError{Path: "data", Message: err.Error()}
	}
	// The deepest first cause is the most specific complaint.
	leaf := verr
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	location := leaf.InstanceLocation
	// A missing or unexpected property is named by its own path.
	switch k := leaf.ErrorKind.(type) {
	case *kind.Required:
		if len(k.Missing) > 0 {
			location = append(slices.Clip(location), k.Missing[0])
		}
	case *kind.AdditionalProperties:
		if len(k.Properties) > 0 {
			location = append(slices.Clip(location), k.Properties[0])
		}
	}
	return &MismatchError{Path: Path(location), Message: leaf.ErrorKind.LocalizedString(printer)}
}

// Path renders a location inside data: "data", "data.amount",
// "data.items[0].sku". A key that is not a plain name is quoted:
// data["a.b"].
func Path(location []string) string {
	var b strings.Builder
	b.WriteString("data")
	for _, tok := range location {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if plainKey(tok) {
			b.WriteString("." + tok)
			continue
		}
		b.WriteString("[" + strconv.Quote(tok) + "]")
	}
	return b.String()
}

func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
