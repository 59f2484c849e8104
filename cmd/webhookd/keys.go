package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/admin"
	"github.com/mono/webhookd/internal/engine"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
	"github.com/mono/webhookd/internal/webhookrule"
)

const keysUsage = `Usage:
  webhookd keys create -scope admin|account|events:write|portal:write [-account ID] [-description TEXT] [-json]
  webhookd keys list [-account ID] [-json]
  webhookd keys revoke KEY_ID
  webhookd keys rotate -id KEY_ID [-grace 1h] [-json]

They work straight on the database (DATABASE_URL or -database-url), so the
first key can be made before anything else runs: they call the API's own
operations, with the API's rules, as the operator (an admin). 'create' and 'rotate'
print the key once: only its hash is stored. 'rotate' makes a new key with
the same scope and account; the old one keeps working for -grace (0 to 7d,
default 1h), then gets 401.
`

// runKeys is `webhookd keys`: API keys managed on the database.
func runKeys(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("keys: a subcommand is required\n\n" + keysUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "create":
		return runKeysCreate(ctx, rest, out)
	case "list":
		return runKeysList(ctx, rest, out)
	case "revoke":
		return runKeysRevoke(ctx, rest, out)
	case "rotate":
		return runKeysRotate(ctx, rest, out)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(out, keysUsage)
		return nil
	default:
		return fmt.Errorf("keys: unknown subcommand %q\n\n%s", sub, keysUsage)
	}
}

// keysAPI is the API's operations on databaseURL (keysDatabase), called
// as admin.OperatorPrincipal: whoever holds DATABASE_URL is the operator,
// with every power of the bootstrap admin key. Close the pool when done.
func keysAPI(ctx context.Context, databaseURL string) (*admin.API, *pgxpool.Pool, error) {
	pool, err := keysDatabase(ctx, databaseURL)
	if err != nil {
		return nil, nil, err
	}
	api, err := admin.NewOperator(pool, nil)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return api, pool, nil
}

// opFailed words an operation's unexpected error (a 500 or 503 whose
// cause is the database's error) as "error <doing>: <cause>"; any other
// refusal by its message, after cmd.
func opFailed(cmd, doing string, err error) error {
	var e *admin.Error
	if errors.As(err, &e) && e.Status < 500 {
		return fmt.Errorf("%s: %s", cmd, e.Message)
	}
	if cause := errors.Unwrap(err); cause != nil {
		err = cause
	}
	return fmt.Errorf("error %s: %w", doing, err)
}

// keysDatabase connects to the database flag's value and checks that its
// schema is current.
func keysDatabase(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, errors.New("DATABASE_URL (-database-url) is required")
	}
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	reasons, err := admin.Readiness(checkCtx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if len(reasons) > 0 {
		pool.Close()
		return nil, fmt.Errorf("the database is not ready: %s", strings.Join(reasons, "; "))
	}
	return pool, nil
}

// keyFlags names the flag behind each field a key's rules can refuse.
var keyFlags = map[string]string{"scope": "-scope", "account_id": "-account", "description": "-description"}

func runKeysCreate(ctx context.Context, args []string, out io.Writer) error {
	s := newSettings("keys create")
	databaseURL := s.fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	params := &admin.KeyParams{}
	s.fs.StringVar(&params.Scope, "scope", "", "the key's scope: admin, account, events:write or portal:write (required)")
	s.fs.StringVar(&params.AccountID, "account", "", "bind the key to this account (required for account, refused for admin)")
	s.fs.StringVar(&params.Description, "description", "", "what the key is for")
	asJSON := s.fs.Bool("json", false, "print JSON")
	if err := s.parse(args); err != nil {
		return err
	}
	if err := params.Check(); err != nil {
		var v *engine.ValidationError
		if errors.As(err, &v) {
			return fmt.Errorf("keys create: %s: %s", keyFlags[v.Field], v.Message)
		}
		return err
	}
	api, pool, err := keysAPI(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	created, err := api.CreateKey(ctx, admin.OperatorPrincipal(), &apitype.KeyCreate{Scope: params.Scope, AccountID: params.AccountID, Description: params.Description})
	if err != nil {
		return opFailed("keys create", "creating key", err)
	}
	if *asJSON {
		return printJSON(out, created)
	}
	account := "every account"
	if created.AccountID != nil {
		account = "account " + *created.AccountID
	}
	fmt.Fprintf(out, "%s\n\nCreated API key %s (scope %s, %s).\nThe key above is shown only this once: store it now.\n", created.Key, created.ID, created.Scope, account)
	return nil
}

func runKeysList(ctx context.Context, args []string, out io.Writer) error {
	s := newSettings("keys list")
	databaseURL := s.fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	account := s.fs.String("account", "", "only this account's keys")
	asJSON := s.fs.Bool("json", false, "print JSON")
	if err := s.parse(args); err != nil {
		return err
	}
	if *account != "" {
		if err := webhookrule.ValidateAccountID(*account); err != nil {
			return fmt.Errorf("keys list: -account: %w", err)
		}
	}
	api, pool, err := keysAPI(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	keys := []apitype.Key{}
	for req := (apitype.KeyList{AccountID: *account, Limit: admin.LimitMax}); ; {
		page, err := api.ListKeys(ctx, admin.OperatorPrincipal(), &req)
		if err != nil {
			return opFailed("keys list", "listing keys", err)
		}
		keys = append(keys, page.Data...)
		if page.NextCursor == "" {
			break
		}
		req.Cursor = page.NextCursor
	}

	if *asJSON {
		return printJSON(out, keys)
	}
	if len(keys) == 0 {
		fmt.Fprintln(out, "no API keys")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tSCOPE\tACCOUNT\tCREATED\tLAST USED\tREVOKED\tEXPIRES\tDESCRIPTION")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s…\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Scope, orDash(k.AccountID),
			k.CreatedAt.UTC().Format(time.RFC3339), timeOrDash(k.LastUsedAt), timeOrDash(k.RevokedAt), timeOrDash(k.ExpiresAt), k.Description)
	}
	return tw.Flush()
}

func runKeysRevoke(ctx context.Context, args []string, out io.Writer) error {
	s := newSettings("keys revoke")
	databaseURL := s.fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	// The id may come before or after the flags.
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	id := s.fs.Arg(0)
	if s.fs.NArg() > 0 {
		if err := s.fs.Parse(s.fs.Args()[1:]); err != nil {
			return err
		}
	}
	if id == "" || s.fs.NArg() > 0 {
		return errors.New("keys revoke: exactly one key id is required: webhookd keys revoke KEY_ID")
	}
	if err := ident.Check(ident.Key, id); err != nil {
		return fmt.Errorf("keys revoke: %q is not a key id: it %w", id, err)
	}
	api, pool, err := keysAPI(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = api.RevokeKey(ctx, admin.OperatorPrincipal(), &apitype.KeyRevoke{ID: id})
	var already *admin.KeyRevokedError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("keys revoke: no API key %s", id)
	case errors.As(err, &already):
		return fmt.Errorf("keys revoke: API key %s was already revoked at %s", id, already.At.UTC().Format(time.RFC3339))
	case err != nil:
		return opFailed("keys revoke", "revoking key "+id, err)
	}
	fmt.Fprintf(out, "Revoked API key %s: requests with it now get 401.\n", id)
	return nil
}

func runKeysRotate(ctx context.Context, args []string, out io.Writer) error {
	s := newSettings("keys rotate")
	databaseURL := s.fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (DATABASE_URL)")
	id := s.fs.String("id", "", "the id of the key to rotate (required)")
	graceRaw := s.fs.String("grace", "1h", "how long the old key keeps working: 0 to 7d, such as 0, 30m, 1h or 2d")
	asJSON := s.fs.Bool("json", false, "print JSON")
	if err := s.parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("keys rotate: -id: the id of the key to rotate is required: webhookd keys rotate -id KEY_ID [-grace 1h]")
	}
	if err := ident.Check(ident.Key, *id); err != nil {
		return fmt.Errorf("keys rotate: -id: %q is not a key id: it %w", *id, err)
	}
	if _, err := admin.ParseKeyGrace(*graceRaw); err != nil {
		var v *engine.ValidationError
		if errors.As(err, &v) {
			return fmt.Errorf("keys rotate: -grace: %s", v.Message)
		}
		return err
	}
	api, pool, err := keysAPI(ctx, *databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	rotated, err := api.RotateKey(ctx, admin.OperatorPrincipal(), &apitype.KeyRotate{ID: *id, Grace: graceRaw})
	var conflict *admin.KeyConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("keys rotate: no API key %s", *id)
	case errors.As(err, &conflict):
		return fmt.Errorf("keys rotate: %s", conflict.Message)
	case err != nil:
		return opFailed("keys rotate", "rotating key "+*id, err)
	}
	if *asJSON {
		return printJSON(out, rotated)
	}
	account := "every account"
	if rotated.AccountID != nil {
		account = "account " + *rotated.AccountID
	}
	fmt.Fprintf(out, "%s\n\nRotated API key %s to %s (scope %s, %s).\nThe key above is shown only this once: store it now.\n"+
		"The old key works until %s, then gets 401.\n",
		rotated.Key.Key, *id, rotated.ID, rotated.Scope, account, rotated.OldKeyExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
