package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mono/webhookd/client"
)

const eventsUsage = `Usage:
  webhookd events show EVENT_ID [-json]

It calls the API at WEBHOOKD_URL (-url) with WEBHOOKD_API_KEY (-api-key).
`

// runEvents is `webhookd events`: events through the API.
func runEvents(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("events: a subcommand is required\n\n" + eventsUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "show":
		return runEventsShow(ctx, rest, out)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(out, eventsUsage)
		return nil
	default:
		return fmt.Errorf("events: unknown subcommand %q\n\n%s", sub, eventsUsage)
	}
}

func runEventsShow(ctx context.Context, args []string, out io.Writer) error {
	return showOne(ctx, args, out, "events show", "event", (*client.Client).GetEvent, printEvent)
}

// printEvent writes an event, its body and its deliveries.
func printEvent(out io.Writer, ev *client.Event) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Event:\t%s\n", ev.ID)
	fmt.Fprintf(tw, "Type:\t%s\n", ev.Type)
	fmt.Fprintf(tw, "Account:\t%s\n", ev.AccountID)
	fmt.Fprintf(tw, "Idempotency key:\t%s\n", orDash(ev.IdempotencyKey))
	fmt.Fprintf(tw, "Occurred:\t%s\n", ev.OccurredAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Created:\t%s\n", ev.CreatedAt.UTC().Format(time.RFC3339))
	_ = tw.Flush()
	var body bytes.Buffer
	if json.Indent(&body, ev.Body, "  ", "  ") != nil {
		body.Reset()
		body.Write(ev.Body)
	}
	fmt.Fprintf(out, "\nBody:\n  %s\n", body.String())
	fmt.Fprintf(out, "\nDeliveries (%d):\n", len(ev.Deliveries))
	if len(ev.Deliveries) > 0 {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tWEBHOOK\tSTATE")
		for _, d := range ev.Deliveries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.ID, d.WebhookID, d.State)
		}
		_ = tw.Flush()
	}
}
