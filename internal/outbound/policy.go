package outbound

import (
	"fmt"
	"net/netip"
)

// Policy says which destinations webhookd may send to. The zero value (and a
// nil *Policy) allows public addresses only.
//
// Three destinations are refused whatever the policy says: the loopback
// address 127.0.0.1, the "this network" range 0.0.0.0/8 and the unspecified
// address ::, in any of their IPv4-mapped, NAT64 or 6to4 forms. Every other
// non-public address (the rest of loopback, RFC 1918, CGNAT, link-local,
// unique local, multicast, broadcast, reserved, documentation and
// benchmarking ranges, and their IPv4-mapped, NAT64 and 6to4 forms) is
// refused unless AllowPrivate is set or the address is in AllowedCIDRs.
//
// A Policy must not be modified while it is in use.
type Policy struct {
	// AllowPrivate allows every non-public address except the ones refused
	// always. It is set from WEBHOOKD_ALLOW_PRIVATE_NETWORKS and is meant for
	// development and tests only. Defaults to false.
	AllowPrivate bool

	// AllowedCIDRs is the operator's allow-list (WEBHOOKD_ALLOWED_CIDRS): an
	// address in one of these prefixes is allowed even if it is not public,
	// except the ones refused always. An IPv4-mapped IPv6 prefix
	// (::ffff:10.0.0.0/104) is treated as the IPv4 prefix it maps. For the
	// NAT64 and 6to4 forms of an IPv4 address, a prefix containing either the
	// IPv6 address or the embedded IPv4 address allows it. Defaults to none.
	AllowedCIDRs []netip.Prefix
}

// BlockedAddressError is returned by Policy.CheckAddr (and, wrapped, by a
// dial the policy refused). It wraps ErrBlockedAddress. Its text names the
// address and its range: when the address came from resolving a host name,
// it is for the server log only (see Result.BlockedReason), never for the
// account that owns the webhook.
type BlockedAddressError struct {
	// Addr is the refused address.
	Addr netip.Addr

	// Reason says what kind of address Addr is, for example "a private
	// network address (10.0.0.0/8)" or "the NAT64 form of a link-local
	// address (169.254.0.0/16)".
	Reason string

	// Always is true for the addresses no policy allows (127.0.0.1,
	// 0.0.0.0/8, ::).
	Always bool
}

// Error implements error.
func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("address %s is not allowed: it is %s", e.Addr, e.Reason)
}

// Unwrap returns ErrBlockedAddress, so errors.Is(err, ErrBlockedAddress)
// holds for every *BlockedAddressError.
func (e *BlockedAddressError) Unwrap() error { return ErrBlockedAddress }

// CheckAddr returns nil if the policy allows connecting to addr, or a
// *BlockedAddressError (which wraps ErrBlockedAddress) if it does not. An
// invalid addr is refused. The IPv6 zone, if any, is ignored.
func (p *Policy) CheckAddr(addr netip.Addr) error {
	if !addr.IsValid() {
		return &BlockedAddressError{Addr: addr, Reason: "not a valid IP address", Always: true}
	}
	addr = addr.WithZone("")
	class := classify(addr)
	switch {
	case class.reason == "":
		return nil
	case class.always:
		return &BlockedAddressError{Addr: addr, Reason: class.reason, Always: true}
	case p != nil && (p.AllowPrivate || p.allowListed(addr.Unmap(), class.embedded)):
		return nil
	}
	return &BlockedAddressError{Addr: addr, Reason: class.reason}
}

// allowListed reports whether addr, or the IPv4 address embedded in it (if
// valid), is in one of the AllowedCIDRs.
func (p *Policy) allowListed(addr, embedded netip.Addr) bool {
	for _, prefix := range p.AllowedCIDRs {
		prefix = unmapPrefix(prefix)
		if prefix.Contains(addr) || (embedded.IsValid() && prefix.Contains(embedded)) {
			return true
		}
	}
	return false
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/96+n) into
// the IPv4 prefix a.b.c.d/n, so it matches the IPv4 addresses CheckAddr sees.
func unmapPrefix(prefix netip.Prefix) netip.Prefix {
	if !prefix.Addr().Is4In6() || prefix.Bits() < 96 {
		return prefix
	}
	return netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96).Masked()
}

// classification is what classify found out about an address.
type classification struct {
	// reason is empty for a public address, otherwise it says what kind of
	// address it is ("a private network address (10.0.0.0/8)").
	reason string

	// always is true if no policy may allow the address.
	always bool

	// embedded is the IPv4 address inside a NAT64 or 6to4 address, or the
	// zero Addr.
	embedded netip.Addr
}

// specialRange is an address range that is not public.
type specialRange struct {
	prefix netip.Prefix
	what   string
}

// The ranges refused always, whatever the policy says.
var alwaysRefused = []specialRange{
	{netip.MustParsePrefix("127.0.0.1/32"), "the loopback address 127.0.0.1"},
	{netip.MustParsePrefix("0.0.0.0/8"), `the "this network" range 0.0.0.0/8`},
	{netip.MustParsePrefix("::/128"), "the unspecified address ::"},
}

// The IPv4 ranges that are not public (IANA IPv4 Special-Purpose Address
// Registry, plus multicast and the reserved class E).
var specialIPv4 = []specialRange{
	{netip.MustParsePrefix("10.0.0.0/8"), "a private network address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared address space) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private network address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay anycast address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private network address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
}

// The IPv6 ranges that are not public. NAT64 (64:ff9b::/96), 6to4
// (2002::/16) and IPv4-mapped addresses are classified by the IPv4 address
// they embed before this list is consulted; anything outside global unicast
// 2000::/3 is refused as reserved after it.
var specialIPv6 = []specialRange{
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible (deprecated) address"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol assignment address (Teredo, benchmarking, ORCHID)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("5f00::/16"), "a segment routing (SRv6) address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique local (private) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local (deprecated) address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64Prefix   = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
)

// classify says whether addr is public, and if not what it is. addr has no
// zone.
func classify(addr netip.Addr) classification {
	addr = addr.Unmap()
	if addr.Is4() {
		return classify4(addr)
	}

	var (
		embedded netip.Addr
		form     string
	)
	a16 := addr.As16()
	switch {
	case nat64Prefix.Contains(addr):
		embedded, form = netip.AddrFrom4([4]byte(a16[12:16])), "the NAT64 form of "
	case sixToFour.Contains(addr):
		embedded, form = netip.AddrFrom4([4]byte(a16[2:6])), "the 6to4 form of "
	}
	if embedded.IsValid() {
		class := classify4(embedded)
		if class.reason != "" {
			class.reason = form + class.reason
		}
		class.embedded = embedded
		return class
	}

	if class, ok := lookup(addr, alwaysRefused, true); ok {
		return class
	}
	if class, ok := lookup(addr, specialIPv6, false); ok {
		return class
	}
	if !globalUnicast.Contains(addr) {
		return classification{reason: "a reserved address (outside global unicast 2000::/3)"}
	}
	return classification{}
}

// classify4 classifies an IPv4 address.
func classify4(addr netip.Addr) classification {
	if class, ok := lookup(addr, alwaysRefused, true); ok {
		return class
	}
	if class, ok := lookup(addr, specialIPv4, false); ok {
		return class
	}
	return classification{}
}

// lookup finds the first range of ranges containing addr.
func lookup(addr netip.Addr, ranges []specialRange, always bool) (classification, bool) {
	for _, r := range ranges {
		if !r.prefix.Contains(addr) {
			continue
		}
		reason := r.what
		if !always && r.prefix.Bits() < r.prefix.Addr().BitLen() {
			reason = fmt.Sprintf("%s (%s)", r.what, r.prefix)
		}
		return classification{reason: reason, always: always}, true
	}
	return classification{}, false
}
