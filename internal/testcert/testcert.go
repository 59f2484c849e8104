// Package testcert makes certificate authorities and certificates for
// tests, and runs an HTTPS receiver on 127.0.0.2 that requires a client
// certificate (mutual TLS) and records which one each request came with.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CA is a certificate authority a test makes.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA's certificate in PEM.
	PEM []byte
}

var serial atomic.Int64

// NewCA makes a CA named name, valid for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &CA{Cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Client makes a client certificate for common name cn, valid until
// notAfter, and returns it and its key (PKCS #8) as PEM.
func (ca *CA) Client(t testing.TB, cn string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issue(t, cn, false, notAfter)
}

// Server makes a server certificate for 127.0.0.2 and hooks.example.test.
func (ca *CA) Server(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issue(t, "receiver", true, time.Now().Add(24*time.Hour))
}

// ClientWithKey is Client with a key the caller gives (an RSA one, say:
// generating an RSA-2048 key takes tens of milliseconds, so a test that
// wants many RSA certificates makes one key and has it certified under
// many names).
func (ca *CA) ClientWithKey(t testing.TB, cn string, notAfter time.Time, key crypto.Signer) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issueFor(t, cn, false, notAfter, key)
}

func (ca *CA) issue(t testing.TB, cn string, server bool, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return ca.issueFor(t, cn, server, notAfter, key)
}

func (ca *CA) issueFor(t testing.TB, cn string, server bool, notAfter time.Time, key crypto.Signer) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Mono test"}},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.2")}
		tmpl.DNSNames = []string{"hooks.example.test"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// Receiver is an HTTPS receiver on 127.0.0.2 with a certificate from a
// private CA, requiring a client certificate from another. It answers 200
// and records, per request, the common name of the client certificate the
// server saw on that request's connection.
type Receiver struct {
	Server *httptest.Server
	// Conns counts the connections accepted.
	Conns atomic.Int64

	mu   sync.Mutex
	cns  []string
	reqs []Request
}

// Request is one request as the Receiver saw it.
type Request struct {
	Path string
	// CommonName is the client certificate's, as presented on the
	// request's connection.
	CommonName string
}

// StartReceiver starts a Receiver whose certificate serverCA signs and
// which accepts client certificates clientCA signs. It stops at cleanup.
func StartReceiver(t testing.TB, serverCA, clientCA *CA) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		cn := req.TLS.PeerCertificates[0].Subject.CommonName
		r.cns = append(r.cns, cn)
		r.reqs = append(r.reqs, Request{Path: req.URL.Path, CommonName: cn})
		r.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	r.Server.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	r.Server.Listener = ln
	r.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.Server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			r.Conns.Add(1)
		}
	}
	r.Server.TLS = ServerConfig(t, serverCA, clientCA)
	r.Server.EnableHTTP2 = true
	r.Server.StartTLS()
	t.Cleanup(r.Server.Close)
	return r
}

// ServerConfig is the TLS configuration of a receiver whose certificate
// serverCA signs (valid for 127.0.0.2 and hooks.example.test) and which
// requires and verifies client certificates clientCA signs.
func ServerConfig(t testing.TB, serverCA, clientCA *CA) *tls.Config {
	t.Helper()
	certPEM, keyPEM := serverCA.Server(t)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.Cert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
}

// Port is the receiver's port.
func (r *Receiver) Port() int { return r.Server.Listener.Addr().(*net.TCPAddr).Port }

// CommonNames lists the client certificate's common name of every request
// so far, in order.
func (r *Receiver) CommonNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cns...)
}

// Requests lists the requests so far, in order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}
