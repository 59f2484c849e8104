package outbound

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrorKindClientCertificateExpired means the webhook's client certificate
// had expired when the attempt started. Nothing was sent: the check runs
// before dialing, so the receiver's gateway never sees a stale certificate
// (and the account reads this instead of a TLS alert).
const ErrorKindClientCertificateExpired = "client_certificate_expired"

// MaxTLSTransportsDefault is the default ClientConfig.MaxTLSTransports.
const MaxTLSTransportsDefault = 1024

// CertificateExpiryWarning is how long before its client certificate
// expires a webhook's health says so (14 days).
const CertificateExpiryWarning = 14 * 24 * time.Hour

// The fields a *TLSFieldError names, as the API spells them.
const (
	FieldClientCertificate = "tls.client_certificate"
	FieldClientKey         = "tls.client_key"
	FieldCABundle          = "tls.ca_bundle"
)

// TLSMaterial is a webhook's TLS setting as PEM: a client certificate chain
// (leaf first) and its key, a bundle of extra CA certificates to trust for
// that webhook (added to, never replacing, the system roots), or both.
type TLSMaterial struct {
	CertificatePEM []byte `json:"certificate,omitempty"`
	KeyPEM         []byte `json:"key,omitempty"`
	CABundlePEM    []byte `json:"ca_bundle,omitempty"`
}

// Empty reports whether m sets nothing.
func (m *TLSMaterial) Empty() bool {
	return m == nil || (len(m.CertificatePEM) == 0 && len(m.KeyPEM) == 0 && len(m.CABundlePEM) == 0)
}

// TLSInfo describes a validated TLSMaterial without its secrets.
type TLSInfo struct {
	// Subject, Issuer, Serial (hex) and NotAfter describe the client
	// certificate (the chain's leaf); all zero when there is none.
	Subject  string
	Issuer   string
	Serial   string
	NotAfter time.Time
	// CASubjects are the subjects of the CA bundle's certificates.
	CASubjects []string
}

// TLSFieldError says what is wrong with one field of a TLSMaterial.
type TLSFieldError struct {
	// Field is one of the Field constants.
	Field string
	// Code is a stable error code (invalid_certificate, invalid_key,
	// encrypted_key, key_mismatch, certificate_expired, missing_field).
	Code string
	// Message says what is wrong, for the account.
	Message string
}

// Error implements error.
func (e *TLSFieldError) Error() string { return e.Field + ": " + e.Message }

// ValidateTLSMaterial checks m as the API receives it: certificates that
// parse, a key that is PEM, not encrypted and matches the leaf, a leaf that
// has not expired at now, and the chain and key given together. Errors are
// *TLSFieldError.
func ValidateTLSMaterial(m *TLSMaterial, now time.Time) (*TLSInfo, error) {
	info := &TLSInfo{}
	if m == nil {
		return info, nil
	}
	hasCert, hasKey := len(bytes.TrimSpace(m.CertificatePEM)) > 0, len(bytes.TrimSpace(m.KeyPEM)) > 0
	switch {
	case hasCert && !hasKey:
		return nil, &TLSFieldError{Field: FieldClientKey, Code: "missing_field", Message: "client_key is required with client_certificate"}
	case hasKey && !hasCert:
		return nil, &TLSFieldError{Field: FieldClientCertificate, Code: "missing_field", Message: "client_certificate is required with client_key"}
	}
	if hasCert {
		chain, err := parseCertificates(m.CertificatePEM, FieldClientCertificate)
		if err != nil {
			return nil, err
		}
		if err := checkKeyPEM(m.KeyPEM); err != nil {
			return nil, err
		}
		if _, err := tls.X509KeyPair(m.CertificatePEM, m.KeyPEM); err != nil {
			if strings.Contains(err.Error(), "does not match") || strings.Contains(err.Error(), "unknown public key") {
				return nil, &TLSFieldError{Field: FieldClientKey, Code: "key_mismatch", Message: "client_key is not the private key of client_certificate (the chain's first certificate)"}
			}
			return nil, &TLSFieldError{Field: FieldClientKey, Code: "invalid_key", Message: "client_key is not a PEM private key webhookd can use (PKCS #8, PKCS #1 RSA or SEC 1 EC)"}
		}
		leaf := chain[0]
		if !now.Before(leaf.NotAfter) {
			return nil, &TLSFieldError{Field: FieldClientCertificate, Code: "certificate_expired", Message: "client_certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339)}
		}
		info.Subject, info.Issuer = leaf.Subject.String(), leaf.Issuer.String()
		info.Serial, info.NotAfter = fmt.Sprintf("%x", leaf.SerialNumber), leaf.NotAfter.UTC()
	}
	if len(bytes.TrimSpace(m.CABundlePEM)) > 0 {
		cas, err := parseCertificates(m.CABundlePEM, FieldCABundle)
		if err != nil {
			return nil, err
		}
		for _, ca := range cas {
			info.CASubjects = append(info.CASubjects, ca.Subject.String())
		}
	}
	return info, nil
}

// parseCertificates parses a PEM bundle of certificates and nothing else.
func parseCertificates(data []byte, field string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, &TLSFieldError{Field: field, Code: "invalid_certificate", Message: fmt.Sprintf("%s must hold only CERTIFICATE PEM blocks, not %q", fieldName(field), block.Type)}
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &TLSFieldError{Field: field, Code: "invalid_certificate", Message: fmt.Sprintf("certificate %d of %s can't be parsed", len(certs)+1, fieldName(field))}
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 || len(bytes.TrimSpace(rest)) > 0 {
		return nil, &TLSFieldError{Field: field, Code: "invalid_certificate", Message: fieldName(field) + " must be PEM certificates (-----BEGIN CERTIFICATE-----), nothing else"}
	}
	return certs, nil
}

// checkKeyPEM refuses a key that is not one PEM private key, or is
// encrypted (webhookd has no passphrase to open it with).
func checkKeyPEM(data []byte) error {
	block, rest := pem.Decode(data)
	if block == nil || len(bytes.TrimSpace(rest)) > 0 {
		return &TLSFieldError{Field: FieldClientKey, Code: "invalid_key", Message: "client_key must be one PEM private key (-----BEGIN PRIVATE KEY-----)"}
	}
	//lint:ignore SA1019 detecting legacy encryption is all it is used for
	if block.Type == "ENCRYPTED PRIVATE KEY" || x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck
		return &TLSFieldError{Field: FieldClientKey, Code: "encrypted_key", Message: "client_key is encrypted: give it unencrypted (it is stored encrypted at rest), e.g. openssl pkey -in key.pem -out plain.pem"}
	}
	if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return &TLSFieldError{Field: FieldClientKey, Code: "invalid_key", Message: fmt.Sprintf("client_key must be a PEM private key, not %q", block.Type)}
	}
	return nil
}

func fieldName(field string) string { return strings.TrimPrefix(field, "tls.") }

// PostOptions are the per-webhook settings of one attempt.
type PostOptions struct {
	// TLS is the webhook's client certificate and CA bundle, nil for
	// none: the attempt then takes the shared default transport.
	TLS *TLSMaterial

	// TLSRef, when TLS is nil, names the webhook's TLS material as it is
	// stored, so that an attempt whose transport is already built neither
	// opens (decrypts) nor hashes the material (see TLSRef).
	TLSRef *TLSRef

	// Authorize, when not nil, is called before the request is sent (and
	// again, with retry true, after a 401) to set its authorization
	// header. An error fails the attempt with the Result it returns.
	Authorize func(req *http.Request, retry bool) *Result
}

// TLSRef names a webhook's TLS material by a digest of the material as it
// is stored (encrypted), and opens it only when the client has no
// transport for that digest yet. A change of the material (a new
// certificate, key or CA bundle, each re-encrypted with a fresh nonce)
// changes the digest, so the next attempt opens the new material and takes
// the transport of that; the old transport goes when it has been idle for
// idleConnTimeout, or when the bound evicts it.
type TLSRef struct {
	// ID is TLSRefID of the stored material and what it is bound to.
	ID [sha256.Size]byte
	// Load opens the material. A non-nil *Result fails the attempt with
	// it (nothing is sent); material that sets nothing takes the shared
	// transport.
	Load func() (*TLSMaterial, *Result)
}

// TLSRefID digests the parts that identify a stored TLS setting (the
// webhook's id, the encryption key's id, the ciphertext, the CA bundle),
// each length-prefixed so no two lists of parts digest alike.
func TLSRefID(parts ...[]byte) [sha256.Size]byte {
	return digestParts(parts...)
}

func digestParts(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// tlsTransports holds one transport, with its own connection pool and TLS
// session cache, per distinct TLS configuration (keyed by the SHA-256 of
// its PEM): connections and sessions opened with one client certificate are
// never used for another's requests. Bounded: the least recently used goes
// when it is full, and any unused for idleConnTimeout is dropped.
//
// refs finds a transport by TLSRef.ID without opening the material: each
// entry is the transport its material was found to need, and goes with
// that transport. Two refs of the same material (two webhooks with the
// same certificate) share its transport, as two PostOptions.TLS do.
type tlsTransports struct {
	max  int
	base *http.Transport
	now  func() time.Time

	mu        sync.RWMutex
	m         map[[sha256.Size]byte]*tlsTransport
	refs      map[[sha256.Size]byte]*tlsTransport
	lastSweep atomic.Int64 // unix nanoseconds
}

// maxRefsPerTransport bounds the refs kept per transport: past it (a
// setting re-uploaded unchanged that often within idleConnTimeout, or
// that many webhooks with one certificate) the transport's refs are
// forgotten, and the next attempt of each opens its material again.
const maxRefsPerTransport = 4096

type tlsTransport struct {
	client    *http.Client
	transport *http.Transport
	notAfter  time.Time // the client certificate's; zero without one
	lastUsed  atomic.Int64
	err       error // the material could not be loaded

	key     [sha256.Size]byte
	refs    [][sha256.Size]byte // the refs entries that name it; under mu
	dropped bool                // no longer kept; under mu
}

func newTLSTransports(base *http.Transport, limit int) *tlsTransports {
	return &tlsTransports{max: limit, base: base, now: time.Now,
		m: make(map[[sha256.Size]byte]*tlsTransport), refs: make(map[[sha256.Size]byte]*tlsTransport)}
}

// getRef returns the transport of the material ref names: the one found
// for ref.ID before, or else that of the material ref.Load opens (nil
// with nil *Result: the material sets nothing).
func (p *tlsTransports) getRef(ref *TLSRef) (*tlsTransport, *Result) {
	now := p.now()
	p.sweepIfDue(now)
	p.mu.RLock()
	t := p.refs[ref.ID]
	p.mu.RUnlock()
	if t != nil {
		t.lastUsed.Store(now.UnixNano())
		return t, nil
	}
	m, res := ref.Load()
	if res != nil {
		return nil, res
	}
	if m.Empty() {
		return nil, nil
	}
	t = p.get(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !t.dropped {
		if len(t.refs) >= maxRefsPerTransport {
			p.forgetRefs(t)
		}
		if _, ok := p.refs[ref.ID]; !ok {
			p.refs[ref.ID] = t
			t.refs = append(t.refs, ref.ID)
		}
	}
	return t, nil
}

// get returns the transport of m, building it if it has none.
func (p *tlsTransports) get(m *TLSMaterial) *tlsTransport {
	key := digestParts(m.CertificatePEM, m.KeyPEM, m.CABundlePEM)
	now := p.now()
	p.sweepIfDue(now)
	p.mu.RLock()
	t := p.m[key]
	p.mu.RUnlock()
	if t != nil {
		t.lastUsed.Store(now.UnixNano())
		return t
	}
	// Built outside the lock (parsing the certificate and key, copying
	// the roots): a thousand webhooks' first attempts don't queue behind
	// one another. Two first attempts of one material may both build; the
	// first kept wins and the other, never used, is dropped.
	built := p.build(m)
	built.key = key
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.m[key]; t != nil {
		t.lastUsed.Store(now.UnixNano())
		return t
	}
	if len(p.m) >= p.max {
		var oldest *tlsTransport
		for _, t := range p.m {
			if oldest == nil || t.lastUsed.Load() < oldest.lastUsed.Load() {
				oldest = t
			}
		}
		p.drop(oldest)
	}
	built.lastUsed.Store(now.UnixNano())
	p.m[key] = built
	return built
}

// sweepIfDue drops the transports idle for idleConnTimeout, at most every
// idleConnTimeout/3.
func (p *tlsTransports) sweepIfDue(now time.Time) {
	last := p.lastSweep.Load()
	if now.UnixNano()-last <= int64(idleConnTimeout/3) || !p.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.m {
		if now.UnixNano()-t.lastUsed.Load() > int64(idleConnTimeout) {
			p.drop(t)
		}
	}
}

// drop forgets t and its refs and closes its idle connections; under mu.
func (p *tlsTransports) drop(t *tlsTransport) {
	delete(p.m, t.key)
	p.forgetRefs(t)
	t.dropped = true
	if t.transport != nil {
		t.transport.CloseIdleConnections()
	}
}

// forgetRefs removes the refs entries naming t; under mu.
func (p *tlsTransports) forgetRefs(t *tlsTransport) {
	for _, id := range t.refs {
		if p.refs[id] == t {
			delete(p.refs, id)
		}
	}
	t.refs = nil
}

// len is how many transports are kept.
func (p *tlsTransports) len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.m)
}

// closeIdle closes the idle connections of every transport.
func (p *tlsTransports) closeIdle() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, t := range p.m {
		if t.transport != nil {
			t.transport.CloseIdleConnections()
		}
	}
}

// build makes the transport of m: the base transport's dialer, timeouts and
// limits, m's certificate, the base roots plus m's CA bundle, and a session
// cache of its own.
func (p *tlsTransports) build(m *TLSMaterial) *tlsTransport {
	// Transport.Clone first settles the base's HTTP/2 defaults (which
	// write its TLSClientConfig on first use) and clones its TLS config:
	// reading base.TLSClientConfig directly would race a first request.
	tr := p.base.Clone()
	cfg := tr.TLSClientConfig
	if len(m.CertificatePEM) > 0 {
		cert, err := tls.X509KeyPair(m.CertificatePEM, m.KeyPEM)
		if err != nil {
			return &tlsTransport{err: errors.New("the webhook's client certificate or key can't be loaded")}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if len(m.CABundlePEM) > 0 {
		roots := cfg.RootCAs
		if roots == nil {
			system, err := x509.SystemCertPool()
			if err != nil {
				system = x509.NewCertPool()
			}
			roots = system
		} else {
			roots = roots.Clone()
		}
		if !roots.AppendCertsFromPEM(m.CABundlePEM) {
			return &tlsTransport{err: errors.New("the webhook's CA bundle can't be loaded")}
		}
		cfg.RootCAs = roots
	}
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	if len(cfg.Certificates) > 0 {
		// HTTP/1.1 only with a client certificate: under TLS 1.3 the
		// receiver checks it after our side of the handshake is done, and
		// HTTP/2 loses its refusal ("client conn could not be
		// established"), where HTTP/1.1 reads it as the TLS alert it is.
		cfg.NextProtos = []string{"http/1.1"}
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	tr.TLSClientConfig = cfg
	t := &tlsTransport{transport: tr, client: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     tr,
	}}
	if len(cfg.Certificates) > 0 && cfg.Certificates[0].Leaf != nil {
		t.notAfter = cfg.Certificates[0].Leaf.NotAfter
	}
	return t
}

// remoteTLSAlert describes an alert the receiver sent after the handshake
// had completed on our side: with TLS 1.3 a server checks the client
// certificate then, so a missing, expired or untrusted client certificate
// shows up as "remote error: tls: certificate required" while reading the
// response.
func remoteTLSAlert(err error) (string, bool) {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" && opErr.Err != nil {
		return "the receiver refused the connection with the TLS alert: " + opErr.Err.Error(), true
	}
	// Over HTTP/2 the alert is lost: the first request on a connection
	// the receiver dropped right after the handshake fails with this
	// (unexported) error of net/http's, matched by its text.
	if strings.Contains(err.Error(), "http2: client conn could not be established") {
		return "the receiver closed the connection right after the TLS handshake (does it require a client certificate?)", true
	}
	return "", false
}
