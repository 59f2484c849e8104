// Package outbound decides where webhookd may send a webhook and sends it.
//
// Customers type the URLs webhookd posts to, so everything that leaves the
// process goes through this package:
//
//   - Policy.ValidateURL checks and normalises a URL when a webhook is created:
//     http or https, a host, no userinfo, at most URLLengthMax bytes, and no
//     spelling of a loopback, private or otherwise non-public address (every
//     IPv4 notation, IDNA, trailing dots and case are normalised first).
//   - Policy.CheckAddr classifies the address actually dialled, so a host name
//     that resolves (or later re-resolves) to a forbidden address is refused at
//     connect time.
//   - Client.Post sends one attempt with explicit timeouts, no proxy, no
//     redirects, verified TLS and a bounded response read, and describes the
//     outcome as a Result whose error message never contains the URL. An
//     attempt the policy refused says only BlockedMessage ("the address is
//     not allowed"), never the address a host name resolved to nor its
//     range; Result.BlockedReason keeps those for the server log.
//
// 127.0.0.1, 0.0.0.0/8, :: and localhost are refused always. Other non-public
// addresses are refused unless Policy.AllowPrivate is set (development and
// tests only) or the address is in Policy.AllowedCIDRs.
package outbound

import "errors"

var (
	// ErrBlockedAddress is wrapped by every error that refuses an address
	// because of the Policy, at create time (CheckAddr) and at dial time.
	ErrBlockedAddress = errors.New("address not allowed")

	// ErrInvalidURL is wrapped by every *URLError returned by
	// Policy.ValidateURL.
	ErrInvalidURL = errors.New("invalid webhook URL")
)
