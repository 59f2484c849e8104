package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mono/webhookd/client"
)

const portalUsage = `Usage:
  webhookd portal-link -account ID [-expires-in 10m] [-json]
  webhookd portal-link -revoke -account ID [-json]

Mints a single-use link that signs a browser in to the dashboard for the
account, on its Settings › Personal › API page, without an API key; it
works once, for -expires-in (1m to 1h, 10m by default). -revoke revokes
every link of the account instead, used or not, and ends the sessions
they opened. It calls the API at WEBHOOKD_URL (-url) with WEBHOOKD_API_KEY
(-api-key), an admin or portal:write key.
`

// runPortalLink is `webhookd portal-link`: mint (or revoke) portal links
// through the API.
func runPortalLink(ctx context.Context, args []string, out io.Writer) error {
	s := newSettings("portal-link")
	s.fs.SetOutput(out)
	s.fs.Usage = func() { fmt.Fprint(out, portalUsage) }
	connect := apiFlags(s)
	account := s.fs.String("account", "", "the account the link signs in to (a bound key: its own by default)")
	expiresIn := s.fs.Duration("expires-in", 0, "how long the link works, from 1m to 1h (default: the server's, 10m)")
	revoke := s.fs.Bool("revoke", false, "revoke the account's links instead of minting one")
	asJSON := s.fs.Bool("json", false, "print the API's JSON answer")
	rest, err := parseWithArgs(s, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("portal-link: unexpected argument %q\n\n%s", rest[0], portalUsage)
	}
	if *expiresIn%time.Second != 0 || *expiresIn < 0 {
		return fmt.Errorf("portal-link: -expires-in: %s is not a whole number of seconds from 1m to 1h", *expiresIn)
	}
	c, err := connect()
	if err != nil {
		return err
	}
	accountID := strings.TrimSpace(*account)
	if *revoke {
		if *expiresIn != 0 {
			return fmt.Errorf("portal-link: -expires-in is for minting, not with -revoke")
		}
		revoked, err := c.RevokePortalLinks(ctx, accountID)
		if err != nil {
			return apiError("portal-link", err)
		}
		if *asJSON {
			return printJSON(out, revoked)
		}
		fmt.Fprintf(out, "Revoked %d portal link(s) of %s; ended %d dashboard session(s).\n", revoked.RevokedLinks, revoked.AccountID, revoked.EndedSessions)
		return nil
	}
	link, err := c.CreatePortalLink(ctx, &client.CreatePortalLinkParams{AccountID: accountID, ExpiresIn: *expiresIn})
	if err != nil {
		return apiError("portal-link", err)
	}
	if *asJSON {
		return printJSON(out, link)
	}
	fmt.Fprintln(out, link.URL)
	fmt.Fprintf(out, "# one use, for account %s, until %s\n", link.AccountID, link.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}
