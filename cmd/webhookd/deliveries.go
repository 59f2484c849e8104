package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mono/webhookd/client"
)

const deliveriesUsage = `Usage:
  webhookd deliveries list -state dead [-account ID] [-webhook ID] [-type TYPE] [-since 24h] [-limit 100] [-json]
  webhookd deliveries show DELIVERY_ID [-json]
  webhookd deliveries replay DELIVERY_ID [-json]
  webhookd deliveries replay -webhook ID|-account ID [-since 24h] [-state dead|succeeded] [-yes] [-json]

They call the API at WEBHOOKD_URL (-url, default http://127.0.0.1:8080) with
WEBHOOKD_API_KEY (-api-key), so they need no database access and see what
the key's scope allows. -account or -webhook is required unless -state is
dead. A bulk replay shows how many deliveries match and asks before
replaying them, unless -yes.
`

// apiURLDefault is where the API commands find webhookd unless
// WEBHOOKD_URL says otherwise.
const apiURLDefault = "http://127.0.0.1:8080"

// apiFlags adds -url and -api-key to s; the returned function makes the
// client once s is parsed.
func apiFlags(s *settings) func() (*client.Client, error) {
	base := s.str("url", "WEBHOOKD_URL", apiURLDefault, "webhookd's base URL")
	key := s.str("api-key", "WEBHOOKD_API_KEY", "", "API key (required)")
	return func() (*client.Client, error) {
		if u, err := url.Parse(*base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not an http(s) URL such as %s", s.where("url"), *base, apiURLDefault)
		}
		if strings.TrimSpace(*key) == "" {
			return nil, fmt.Errorf("%s is required", s.where("api-key"))
		}
		c, err := client.New(*base, strings.TrimSpace(*key), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.where("url"), err)
		}
		return c, nil
	}
}

// apiFieldFlags names the flag behind each API field a command sets.
var apiFieldFlags = map[string]string{
	"state": "-state", "account_id": "-account", "webhook_id": "-webhook", "event_type": "-type",
	"created_after": "-since", "limit": "-limit", "Authorization": "-api-key (WEBHOOKD_API_KEY)",
}

// apiError describes err for the command cmd: an API error's message, the
// field (and the flag behind it) at fault, status and code.
func apiError(cmd string, err error) error {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	where := ""
	if apiErr.Field != "" {
		where = "field " + apiErr.Field
		if flag, ok := apiFieldFlags[apiErr.Field]; ok {
			where += " (" + flag + ")"
		}
		where += ": "
	}
	code := strconv.Itoa(apiErr.Status)
	if apiErr.Code != "" {
		code += " " + apiErr.Code
	}
	return fmt.Errorf("%s: %s%s [%s]", cmd, where, apiErr.Message, code)
}

// parseWithArgs parses args whose positional arguments may come before,
// between or after the flags, and returns the positional ones.
func parseWithArgs(s *settings, args []string) ([]string, error) {
	var positional []string
	for {
		if err := s.fs.Parse(args); err != nil {
			return nil, err
		}
		if s.fs.NArg() == 0 {
			break
		}
		positional = append(positional, s.fs.Arg(0))
		args = s.fs.Args()[1:]
	}
	for _, p := range s.parsers {
		if err := p(); err != nil {
			return nil, err
		}
	}
	return positional, nil
}

// since reads a -since duration: empty is no bound.
func since(raw string, now time.Time) (time.Time, error) {
	if raw == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("-since: %q is not a positive duration such as 24h or 90m", raw)
	}
	return now.Add(-d), nil
}

// runDeliveries is `webhookd deliveries`: list, show and replay
// deliveries through the API.
func runDeliveries(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	if len(args) == 0 {
		return errors.New("deliveries: a subcommand is required\n\n" + deliveriesUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		return runDeliveriesList(ctx, rest, out, errOut)
	case "show":
		return runDeliveriesShow(ctx, rest, out)
	case "replay":
		return runDeliveriesReplay(ctx, rest, in, out, errOut)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(out, deliveriesUsage)
		return nil
	default:
		return fmt.Errorf("deliveries: unknown subcommand %q\n\n%s", sub, deliveriesUsage)
	}
}

// listLimitMax bounds -limit: the deliveries one command fetches.
const listLimitMax = 100_000

func runDeliveriesList(ctx context.Context, args []string, out, errOut io.Writer) error {
	s := newSettings("deliveries list")
	newClient := apiFlags(s)
	f := &client.DeliveryFilter{}
	s.fs.StringVar(&f.State, "state", "", "only deliveries in this state: pending, succeeded, dead or cancelled")
	s.fs.StringVar(&f.AccountID, "account", "", "only this account's deliveries")
	s.fs.StringVar(&f.WebhookID, "webhook", "", "only this webhook's deliveries")
	s.fs.StringVar(&f.EventType, "type", "", "only deliveries of events of this type")
	sinceRaw := s.fs.String("since", "", "only deliveries created within this long, such as 24h")
	limit := s.fs.Int("limit", 100, fmt.Sprintf("show at most this many deliveries (1 to %d)", listLimitMax))
	asJSON := s.fs.Bool("json", false, "print JSON")
	if err := s.parse(args); err != nil {
		return err
	}
	if *limit < 1 || *limit > listLimitMax {
		return fmt.Errorf("deliveries list: -limit: %d is not from 1 to %d", *limit, listLimitMax)
	}
	var err error
	if f.CreatedAfter, err = since(*sinceRaw, time.Now()); err != nil {
		return fmt.Errorf("deliveries list: %w", err)
	}
	c, err := newClient()
	if err != nil {
		return err
	}

	rows := []client.Delivery{}
	more := false
	for {
		f.Limit = min(*limit-len(rows), 1000)
		page, err := c.ListDeliveries(ctx, f)
		if err != nil {
			return apiError("deliveries list", err)
		}
		rows = append(rows, page.Data...)
		if page.NextCursor == "" {
			break
		}
		if len(rows) >= *limit {
			more = true
			break
		}
		f.Cursor = page.NextCursor
	}
	if more {
		fmt.Fprintf(errOut, "More deliveries match: showing the newest %d (raise -limit or narrow the filter).\n", len(rows))
	}
	if *asJSON {
		return printJSON(out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "no deliveries match")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tATTEMPTS\tACCOUNT\tWEBHOOK\tEVENT TYPE\tCREATED\tFINISHED")
	for _, d := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.State, d.AttemptCount, d.AccountID, d.WebhookID, d.EventType,
			d.CreatedAt.UTC().Format(time.RFC3339), timeOrDash(d.FinishedAt))
	}
	return tw.Flush()
}

func runDeliveriesShow(ctx context.Context, args []string, out io.Writer) error {
	return showOne(ctx, args, out, "deliveries show", "delivery", (*client.Client).GetDelivery, printDelivery)
}

// showOne runs a `<noun> show ID` command: one id, fetched with get and
// printed as a table with print, or as JSON with -json.
func showOne[T any](ctx context.Context, args []string, out io.Writer, name, what string,
	get func(*client.Client, context.Context, string) (T, error), show func(io.Writer, T)) error {
	s := newSettings(name)
	newClient := apiFlags(s)
	asJSON := s.fs.Bool("json", false, "print JSON")
	ids, err := parseWithArgs(s, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%s: exactly one %s id is required: webhookd %s %s_ID", name, what, name, strings.ToUpper(what))
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	v, err := get(c, ctx, ids[0])
	if err != nil {
		return apiError(name, err)
	}
	if *asJSON {
		return printJSON(out, v)
	}
	show(out, v)
	return nil
}

// printDelivery writes a delivery, its attempt table and its replays.
func printDelivery(out io.Writer, d *client.Delivery) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Delivery:\t%s\n", d.ID)
	fmt.Fprintf(tw, "State:\t%s\n", d.State)
	fmt.Fprintf(tw, "Event:\t%s (%s)\n", d.EventID, d.EventType)
	fmt.Fprintf(tw, "Webhook:\t%s\n", d.WebhookID)
	fmt.Fprintf(tw, "Account:\t%s\n", d.AccountID)
	fmt.Fprintf(tw, "Generation:\t%d\n", d.Generation)
	fmt.Fprintf(tw, "Created:\t%s\n", d.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Next attempt:\t%s\n", timeOrDash(d.NextAttemptAt))
	fmt.Fprintf(tw, "Finished:\t%s\n", timeOrDash(d.FinishedAt))
	_ = tw.Flush()

	fmt.Fprintf(out, "\nAttempts (%d):\n", len(d.Attempts))
	if len(d.Attempts) > 0 {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tGEN\tSTARTED\tDURATION\tSTATUS\tERROR\tRESPONSE")
		for _, a := range d.Attempts {
			status := "-"
			if a.StatusCode != nil {
				status = strconv.Itoa(*a.StatusCode)
			}
			errText := "-"
			if a.ErrorKind != nil {
				errText = *a.ErrorKind
				if a.ErrorMessage != nil && *a.ErrorMessage != "" {
					errText += ": " + *a.ErrorMessage
				}
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", a.Number, a.Generation, a.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
				time.Duration(a.DurationMS*float64(time.Millisecond)).Round(time.Millisecond), status, oneLine(errText, 60), oneLine(orDash(a.ResponseExcerpt), 40))
		}
		_ = tw.Flush()
	}
	if len(d.Replays) > 0 {
		fmt.Fprintf(out, "\nReplays (%d):\n", len(d.Replays))
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GEN\tFROM\tKEY\tBULK REPLAY\tAT")
		for _, r := range d.Replays {
			key := "bootstrap"
			if r.KeyID != nil {
				key = *r.KeyID
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Generation, r.FromState, key, orDash(r.BatchID), r.CreatedAt.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
	}
}

// oneLine makes s fit one table cell: no line breaks or tabs, at most n
// characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// bulkCountMax bounds the deliveries counted before a bulk replay: the
// API refuses a larger one anyway.
const bulkCountMax = 100_000

func runDeliveriesReplay(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	s := newSettings("deliveries replay")
	newClient := apiFlags(s)
	f := &client.ReplayFilter{}
	s.fs.StringVar(&f.WebhookID, "webhook", "", "bulk: replay this webhook's deliveries")
	s.fs.StringVar(&f.AccountID, "account", "", "bulk: replay this account's deliveries")
	s.fs.StringVar(&f.State, "state", client.StateDead, "bulk: replay deliveries in this state: dead or succeeded")
	sinceRaw := s.fs.String("since", "", "bulk: only deliveries created within this long, such as 24h")
	yes := s.fs.Bool("yes", false, "bulk: replay without asking")
	asJSON := s.fs.Bool("json", false, "print JSON")
	ids, err := parseWithArgs(s, args)
	if err != nil {
		return err
	}
	bulk := f.WebhookID != "" || f.AccountID != "" || *sinceRaw != "" || *yes
	switch {
	case len(ids) > 1:
		return errors.New("deliveries replay: at most one delivery id: webhookd deliveries replay DELIVERY_ID")
	case len(ids) == 1 && bulk:
		return errors.New("deliveries replay: give a delivery id, or -webhook/-account (and -since) for a bulk replay, not both")
	case len(ids) == 0 && f.WebhookID == "" && f.AccountID == "":
		return errors.New("deliveries replay: a delivery id, or -webhook or -account for a bulk replay, is required\n\n" + deliveriesUsage)
	}
	if f.State != client.StateDead && f.State != client.StateSucceeded {
		return fmt.Errorf("deliveries replay: -state: %q is not dead or succeeded", f.State)
	}
	now := time.Now()
	if f.CreatedAfter, err = since(*sinceRaw, now); err != nil {
		return fmt.Errorf("deliveries replay: %w", err)
	}
	c, err := newClient()
	if err != nil {
		return err
	}

	if len(ids) == 1 {
		d, err := c.ReplayDelivery(ctx, ids[0])
		if err != nil {
			return apiError("deliveries replay", err)
		}
		if *asJSON {
			return printJSON(out, d)
		}
		fmt.Fprintf(out, "Replayed delivery %s: pending again, as generation %d (%d attempts so far).\n", d.ID, d.Generation, d.AttemptCount)
		return nil
	}

	// An unknown webhook (or another account's, or a deleted one) lists
	// no deliveries; name it instead of counting none.
	if f.WebhookID != "" {
		if _, err := c.GetWebhook(ctx, f.WebhookID); err != nil {
			var apiErr *client.APIError
			if errors.As(err, &apiErr) && apiErr.Field == "id" {
				named := *apiErr
				named.Field = "webhook_id"
				err = &named
			}
			return apiError("deliveries replay", err)
		}
	}
	// Count what the replay would take, over the same window: the bulk
	// replay API has no dry run.
	f.CreatedBefore = now
	n, capped, err := countDeliveries(ctx, c, &client.DeliveryFilter{
		State: f.State, AccountID: f.AccountID, WebhookID: f.WebhookID, CreatedAfter: f.CreatedAfter, CreatedBefore: f.CreatedBefore,
	})
	if err != nil {
		return apiError("deliveries replay", err)
	}
	what := describeReplay(f, *sinceRaw)
	if capped {
		return fmt.Errorf("deliveries replay: more than %d %s deliveries match %s: narrow the filter with -webhook or -since", bulkCountMax, f.State, what)
	}
	if n == 0 {
		fmt.Fprintf(errOut, "No %s deliveries match %s: nothing to replay.\n", f.State, what)
		if *asJSON {
			return printJSON(out, map[string]int{"total": 0})
		}
		return nil
	}
	if !*yes {
		fmt.Fprintf(errOut, "Replay %d %s deliveries of %s? [y/N] ", n, f.State, what)
		if !confirmed(in) {
			fmt.Fprintln(errOut)
			return errors.New("deliveries replay: not confirmed, nothing replayed (answer y, or pass -yes)")
		}
	}
	batch, err := c.ReplayDeliveries(ctx, f)
	if err != nil {
		return apiError("deliveries replay", err)
	}
	if *asJSON {
		return printJSON(out, batch)
	}
	fmt.Fprintf(out, "Bulk replay %s started: %d deliveries, replayed in the background (GET /v1/replays/%s shows progress).\n", batch.ID, batch.Total, batch.ID)
	return nil
}

// countDeliveries counts the deliveries matching f, page by page, up to
// bulkCountMax; capped says there are more.
func countDeliveries(ctx context.Context, c *client.Client, f *client.DeliveryFilter) (n int, capped bool, err error) {
	f.Limit = 1000
	for {
		page, err := c.ListDeliveries(ctx, f)
		if err != nil {
			return 0, false, err
		}
		n += len(page.Data)
		if page.NextCursor == "" {
			return n, false, nil
		}
		if n >= bulkCountMax {
			return n, true, nil
		}
		f.Cursor = page.NextCursor
	}
}

func describeReplay(f *client.ReplayFilter, since string) string {
	var parts []string
	if f.WebhookID != "" {
		parts = append(parts, "webhook "+f.WebhookID)
	}
	if f.AccountID != "" {
		parts = append(parts, "account "+f.AccountID)
	}
	s := strings.Join(parts, ", ")
	if since != "" {
		s += " created in the last " + since
	}
	return s
}

// confirmed reads one answer line from in: yes only for y or yes. End of
// input (no terminal) is no.
func confirmed(in io.Reader) bool {
	if in == nil {
		return false
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
