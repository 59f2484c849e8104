package store

import (
	"context"
	"time"
)

// WebhookTLS is a webhook's TLS setting as stored (all nil: none).
// Ciphertext (under KeyID) is the encrypted client certificate chain and
// key; CABundle the PEM CA certificates trusted besides the system roots;
// the Cert fields describe the client certificate, for the API and the
// expiry metric.
type WebhookTLS struct {
	Ciphertext   []byte
	KeyID        *string
	CABundle     *string
	CertSubject  *string
	CertIssuer   *string
	CertSerial   *string
	CertNotAfter *time.Time
}

// Empty reports whether t sets nothing.
func (t *WebhookTLS) Empty() bool { return t.Ciphertext == nil && t.CABundle == nil }

const webhooksCertExpiring = `
SELECT count(*) FROM webhooks
WHERE tls_cert_not_after IS NOT NULL AND tls_cert_not_after < $1 AND deleted_at IS NULL`

// CountCertificatesExpiring counts the live webhooks whose client
// certificate expires (or has expired) before before.
func CountCertificatesExpiring(ctx context.Context, db DB, before time.Time) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, webhooksCertExpiring, before).Scan(&n)
	return n, err
}
