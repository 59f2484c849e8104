package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/keyring"
	"github.com/mono/webhookd/internal/outbound"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

// NotifySecretMinLen is the shortest WEBHOOKD_NOTIFY_SECRET.
const NotifySecretMinLen = 16

// notifyPolicy is the outbound policy of the operator's notifications: the
// one URL exempt from the private-network rule (operators' alerting
// endpoints are usually internal). localhost, 127.0.0.1, 0.0.0.0/8 and ::
// stay refused, as everywhere.
var notifyPolicy = &outbound.Policy{AllowPrivate: true}

// validateNotify checks WEBHOOKD_NOTIFY_URL and WEBHOOKD_NOTIFY_SECRET:
// both or neither; an http(s) URL; a secret of NotifySecretMinLen
// characters or more.
func validateNotify(rawURL, secret string) error {
	switch {
	case rawURL == "" && secret == "":
		return nil
	case rawURL == "":
		return errors.New("WEBHOOKD_NOTIFY_SECRET is set without WEBHOOKD_NOTIFY_URL")
	case secret == "":
		return errors.New("WEBHOOKD_NOTIFY_URL needs WEBHOOKD_NOTIFY_SECRET, the secret its notifications are signed with")
	case len(secret) < NotifySecretMinLen:
		return fmt.Errorf("WEBHOOKD_NOTIFY_SECRET must be at least %d characters (generate one with `openssl rand -base64 32`)", NotifySecretMinLen)
	}
	if _, err := notifyPolicy.ValidateURL(rawURL); err != nil {
		return fmt.Errorf("WEBHOOKD_NOTIFY_URL: %w", err)
	}
	return nil
}

// setupNotify keeps the operator's notification webhook in line with
// WEBHOOKD_NOTIFY_URL and WEBHOOKD_NOTIFY_SECRET (removed when they are
// unset: every process should be given the same) and returns the outbound
// client its deliveries go through, exempt from the private-network rule;
// nil without one.
func setupNotify(ctx context.Context, pool *pgxpool.Pool, keys *keyring.Keyring, cfg *Config, logger *zap.Logger) (*outbound.Client, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if cfg.NotifyURL == "" {
		if err := store.RemoveOperatorWebhook(ctx, pool, now); err != nil {
			return nil, fmt.Errorf("error removing the operator's notification webhook: %w", err)
		}
		return nil, nil
	}
	normalized, err := notifyPolicy.ValidateURL(strings.TrimSpace(cfg.NotifyURL))
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_NOTIFY_URL: %w", err)
	}
	ciphertext, keyID, err := keys.Encrypt([]byte(cfg.NotifySecret), []byte(store.OperatorWebhookID))
	if err != nil {
		return nil, fmt.Errorf("error encrypting WEBHOOKD_NOTIFY_SECRET: %w", err)
	}
	err = store.EnsureOperatorWebhook(ctx, pool, &store.Webhook{
		AccountID: engine.NotifyAccount, URL: cfg.NotifyURL, URLNormalized: normalized,
		Description: "The operator's notifications (WEBHOOKD_NOTIFY_URL)", SecretCiphertext: ciphertext, SecretKeyID: keyID,
		CreatedAt: now, EventTypes: webhookrule.NotificationTypes,
	})
	if err != nil {
		return nil, fmt.Errorf("error saving the operator's notification webhook: %w", err)
	}
	// Through the egress proxy too, when set: every request webhookd makes
	// to an endpoint leaves from the allow-listed addresses.
	client, err := outbound.NewClient(notifyPolicy, &outbound.ClientConfig{Timeout: cfg.HTTPTimeout, UserAgent: cfg.UserAgent, EgressProxy: cfg.EgressProxy})
	if err != nil {
		return nil, fmt.Errorf("error creating the notification client: %w", err)
	}
	logger.Info("operator notifications on", zap.Strings("types", webhookrule.NotificationTypes))
	return client, nil
}
