package engine

import "github.com/mono/webhookd/internal/webhookrule"

// ValidationError is bad input, named by field: what Enqueue returns for an
// event it refuses. The API answers it with 422 (or 400 for a wrong JSON
// type) and the JSON error shape. The rules themselves live in
// internal/webhookrule, shared with the API, the dashboard and the CLI.
type ValidationError = webhookrule.ValidationError
