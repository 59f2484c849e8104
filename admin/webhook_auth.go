package admin

import (
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/mono/webhookd/dispatcher"
	"github.com/mono/webhookd/outbound"
	"github.com/mono/webhookd/store"
)

// WebhookBodyLimit is the largest body of POST /v1/webhooks and PATCH
// /v1/webhooks/{id}: 256 KiB, room for a client certificate chain, its key
// and a CA bundle of a few dozen certificates in PEM.
const WebhookBodyLimit = 256 << 10

// webhookTLSRequest is a webhook's tls setting as a create or update gives
// it, in PEM. On update it replaces the whole setting; {} removes it.
type webhookTLSRequest struct {
	// ClientCertificate is the chain presented to the receiver, leaf
	// first; ClientKey its private key, unencrypted. Stored encrypted,
	// never returned.
	ClientCertificate *string `json:"client_certificate"`
	ClientKey         *string `json:"client_key"`
	// CABundle is CA certificates trusted for this webhook besides the
	// system roots (a receiver with a certificate from a private CA).
	CABundle *string `json:"ca_bundle"`
}

// webhookTLSResponse is a webhook's tls setting as the API shows it:
// never the key, nor the certificate itself.
type webhookTLSResponse struct {
	ClientCertificate *certificateInfo `json:"client_certificate"`
	CABundle          *caBundleInfo    `json:"ca_bundle"`
}

type certificateInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	// ExpiresSoon is true within outbound.CertificateExpiryWarning (14
	// days) of NotAfter, and once it has passed.
	ExpiresSoon bool `json:"expires_soon"`
}

type caBundleInfo struct {
	Subjects []string `json:"subjects"`
}

// webhookTLS validates and encrypts the tls setting of a create or update
// request; nil when the request doesn't set it.
func (a *API) webhookTLS(webhookID string, given *webhookTLSRequest) (*store.WebhookTLS, *apiError) {
	if given == nil {
		return nil, nil
	}
	m := &outbound.TLSMaterial{}
	if given.ClientCertificate != nil {
		m.CertificatePEM = []byte(*given.ClientCertificate)
	}
	if given.ClientKey != nil {
		m.KeyPEM = []byte(*given.ClientKey)
	}
	if given.CABundle != nil {
		m.CABundlePEM = []byte(*given.CABundle)
	}
	info, err := outbound.ValidateTLSMaterial(m, a.now())
	if err != nil {
		var fieldErr *outbound.TLSFieldError
		if errors.As(err, &fieldErr) {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: fieldErr.Code, Field: fieldErr.Field, Message: fieldErr.Message}
		}
		return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_tls", Field: "tls", Message: "tls is not valid"}
	}
	out := &store.WebhookTLS{}
	if len(info.CASubjects) > 0 {
		bundle := string(m.CABundlePEM)
		out.CABundle = &bundle
	}
	if info.Subject == "" && info.NotAfter.IsZero() {
		return out, nil
	}
	ct, keyID, err := dispatcher.EncryptTLS(a.keys, webhookID, m)
	if err != nil {
		a.logger.Error("error encrypting webhook client certificate", zap.Error(err))
		return nil, errInternal(err)
	}
	notAfter := info.NotAfter
	out.Ciphertext, out.KeyID = ct, keyID
	out.CertSubject, out.CertIssuer, out.CertSerial, out.CertNotAfter = &info.Subject, &info.Issuer, &info.Serial, &notAfter
	return out, nil
}

// renderTLS is a webhook's tls setting as the API shows it, nil when it
// has none.
func renderTLS(t *store.WebhookTLS, now time.Time) *webhookTLSResponse {
	if t.Empty() {
		return nil
	}
	out := &webhookTLSResponse{}
	if t.CertNotAfter != nil {
		info := &certificateInfo{NotAfter: t.CertNotAfter.UTC(), ExpiresSoon: t.CertNotAfter.Sub(now) < outbound.CertificateExpiryWarning}
		for dst, src := range map[*string]*string{&info.Subject: t.CertSubject, &info.Issuer: t.CertIssuer, &info.Serial: t.CertSerial} {
			if src != nil {
				*dst = *src
			}
		}
		out.ClientCertificate = info
	}
	if t.CABundle != nil {
		info, err := outbound.ValidateTLSMaterial(&outbound.TLSMaterial{CABundlePEM: []byte(*t.CABundle)}, now)
		out.CABundle = &caBundleInfo{Subjects: []string{}}
		if err == nil {
			out.CABundle.Subjects = append(out.CABundle.Subjects, info.CASubjects...)
		}
	}
	return out
}
