// Package apitype declares the JSON API's wire shapes once: every request
// body and answer of /v1, the delivery states, scopes and webhook settings
// they carry. The API (admin) encodes them, the dashboard reads them, and
// package client re-exports them under its own names through type aliases.
//
// It imports nothing of webhookd's, nor pgx or River, so that a producer
// importing client pulls in neither. internal/admin/openapi.json describes the same
// shapes; TestOpenAPISchemasMatchTypes (admin) holds the two together field
// by field.
package apitype
