package webhookrule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/mono/webhookd/internal/keyring"
)

// Custom header limits.
const (
	// HeadersMax is how many custom headers a webhook may have.
	HeadersMax = 10
	// HeaderNameMaxLen and HeaderValueMaxLen bound one header.
	HeaderNameMaxLen  = 64
	HeaderValueMaxLen = 1024
)

// reservedHeaders are names a webhook's custom headers may not use:
// hop-by-hop headers, those the sender sets itself, and Host.
var reservedHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "User-Agent", "Traceparent", "Tracestate",
}

// ValidateHeaders checks a webhook's custom headers: at most HeadersMax,
// names that are HTTP tokens and none of the hop-by-hop ones, Host,
// User-Agent, traceparent/tracestate, webhook-*, Mono-* or Content-*, no name twice
// (in any case), and values without control characters. It returns the
// names, canonicalised and sorted.
func ValidateHeaders(headers map[string]string) ([]string, error) {
	if len(headers) > HeadersMax {
		return nil, &ValidationError{Field: "headers", Code: "too_many_headers", Message: fmt.Sprintf("headers may have at most %d entries (got %d)", HeadersMax, len(headers))}
	}
	names := make([]string, 0, len(headers))
	for name, value := range headers {
		field := "headers." + name
		canonical := http.CanonicalHeaderKey(name)
		switch {
		case name == "" || len(name) > HeaderNameMaxLen || !httpguts.ValidHeaderFieldName(name):
			return nil, &ValidationError{Field: field, Code: "invalid_header_name", Message: fmt.Sprintf("a header name must be an HTTP token of 1 to %d characters", HeaderNameMaxLen)}
		case slices.Contains(reservedHeaders, canonical), strings.HasPrefix(canonical, "Mono-"), strings.HasPrefix(canonical, "Content-"), strings.HasPrefix(canonical, "Webhook-"):
			return nil, &ValidationError{Field: field, Code: "reserved_header", Message: "hop-by-hop headers, Host, User-Agent, traceparent, tracestate, webhook-* (Standard Webhooks), Mono-* and Content-* are set by webhookd or the connection and can't be custom headers"}
		case slices.Contains(names, canonical):
			return nil, &ValidationError{Field: field, Code: "duplicate_header", Message: "the same header name is given twice (names are case-insensitive)"}
		case len(value) > HeaderValueMaxLen || !httpguts.ValidHeaderFieldValue(value):
			return nil, &ValidationError{Field: field, Code: "invalid_header_value", Message: fmt.Sprintf("a header value must be at most %d bytes without control characters", HeaderValueMaxLen)}
		}
		names = append(names, canonical)
	}
	slices.Sort(names)
	return names, nil
}

// headersAAD binds a webhook's encrypted headers to it.
func headersAAD(webhookID string) []byte { return []byte(webhookID + "/headers") }

// EncryptHeaders encrypts a webhook's custom headers (validated) for storage.
// No headers encrypt to nil.
func EncryptHeaders(keys *keyring.Keyring, webhookID string, headers map[string]string) (ciphertext []byte, keyID *string, err error) {
	if len(headers) == 0 {
		return nil, nil, nil
	}
	canonical := make(map[string]string, len(headers))
	for name, value := range headers {
		canonical[http.CanonicalHeaderKey(name)] = value
	}
	plain, err := json.Marshal(canonical)
	if err != nil {
		return nil, nil, err
	}
	return seal(keys, plain, headersAAD(webhookID))
}

// DecryptHeaders returns a webhook's custom headers from storage.
func DecryptHeaders(keys *keyring.Keyring, webhookID string, ciphertext []byte, keyID *string) (map[string]string, error) {
	if ciphertext == nil || keyID == nil {
		return nil, nil
	}
	plain, err := keys.Decrypt(ciphertext, *keyID, headersAAD(webhookID))
	if err != nil {
		return nil, err
	}
	var headers map[string]string
	return headers, json.Unmarshal(plain, &headers)
}
