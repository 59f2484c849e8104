package engine

import (
	"context"
	"net/http"

	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// TLSMaterialOf returns the TLS material of a target (nil: none),
// decrypting its client certificate and key.
func TLSMaterialOf(keys *keyring.Keyring, target *store.Target) (*outbound.TLSMaterial, error) {
	if target.TLSCipher == nil && target.TLSCABundle == nil {
		return nil, nil
	}
	m := &outbound.TLSMaterial{}
	if target.TLSCABundle != nil {
		m.CABundlePEM = []byte(*target.TLSCABundle)
	}
	if target.TLSCipher != nil && target.TLSKeyID != nil {
		var err error
		m.CertificatePEM, m.KeyPEM, err = webhookrule.DecryptTLS(keys, target.WebhookID, target.TLSCipher, *target.TLSKeyID)
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// TLSRefOf names the TLS setting of a target for the outbound client (nil:
// none) without decrypting it: the client opens it, through TLSMaterialOf,
// only when it has no transport for this exact stored setting yet. The
// digest covers the webhook, the encryption key's id, the ciphertext (a
// fresh nonce at every encryption, so a PATCH always changes it) and the
// CA bundle. A setting that can't be decrypted fails the attempt, kind
// secret_unavailable, without sending.
func TLSRefOf(keys *keyring.Keyring, target *store.Target, log *zap.Logger) *outbound.TLSRef {
	if target.TLSCipher == nil && target.TLSCABundle == nil {
		return nil
	}
	var keyID, bundle []byte
	if target.TLSKeyID != nil {
		keyID = []byte(*target.TLSKeyID)
	}
	if target.TLSCABundle != nil {
		bundle = []byte(*target.TLSCABundle)
	}
	return &outbound.TLSRef{
		ID: outbound.TLSRefID([]byte(target.WebhookID), keyID, target.TLSCipher, bundle),
		Load: func() (*outbound.TLSMaterial, *outbound.Result) {
			material, err := TLSMaterialOf(keys, target)
			if err != nil {
				log.Error("cannot decrypt the webhook's client certificate; is its key still in WEBHOOKD_ENCRYPTION_KEY?")
				return nil, &outbound.Result{
					ErrorKind:    ErrorKindSecretUnavailable,
					ErrorMessage: "the webhook's client certificate could not be decrypted: its encryption key is not in WEBHOOKD_ENCRYPTION_KEY",
				}
			}
			return material, nil
		},
	}
}

// post sends one attempt of target with the webhook's own settings: its
// client certificate and CA bundle (a transport of their own in the
// outbound client, found by TLSRefOf's digest) and its OAuth2 token.
func (w *Worker) post(ctx context.Context, target *store.Target, header http.Header, log *zap.Logger) *outbound.Result {
	client := w.clientFor(target)
	oauth, err := w.oauthFor(ctx, target)
	if err != nil {
		log.Error("cannot load the webhook's OAuth2 setting", zap.Error(err))
		return &outbound.Result{
			ErrorKind:    outbound.ErrorKindOAuthToken,
			ErrorMessage: "the webhook's OAuth2 setting could not be loaded (is its encryption key still in WEBHOOKD_ENCRYPTION_KEY?)",
		}
	}
	ref := TLSRefOf(w.keys, target, log)
	if ref == nil && oauth == nil {
		return client.Post(ctx, target.URL, header, target.Body)
	}
	opts := &outbound.PostOptions{TLSRef: ref}
	if oauth != nil {
		opts.Authorize = client.Authorizer(target.WebhookID, oauth)
	}
	return client.PostWith(ctx, target.URL, header, target.Body, opts)
}
