package outbound

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPolicyCheckAddr(t *testing.T) {
	t.Parallel()

	var (
		strictPolicy  = &Policy{}
		privatePolicy = &Policy{AllowPrivate: true}
		cidrPolicy    = &Policy{AllowedCIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("0.0.0.0/0"), // even everything: 127.0.0.1 and 0.0.0.0/8 stay refused
			netip.MustParsePrefix("::/127"),
			netip.MustParsePrefix("fd00::/8"),
			netip.MustParsePrefix("::ffff:172.16.0.0/108"), // IPv4-mapped form of 172.16.0.0/12
		}}
		onlyMappedPolicy = &Policy{AllowedCIDRs: []netip.Prefix{
			netip.MustParsePrefix("::ffff:172.16.0.0/108"),
		}}
	)

	const (
		public  = iota // allowed by every policy
		always         // refused by every policy
		private        // refused unless AllowPrivate or listed
	)

	tests := []struct {
		addr string
		kind int
		// reason is a substring of the *BlockedAddressError's Reason.
		reason string
	}{
		{"127.0.0.1", always, "loopback address 127.0.0.1"},
		{"0.0.0.0", always, "this network"},
		{"0.255.255.255", always, "this network"},
		{"::", always, "unspecified"},
		{"::ffff:127.0.0.1", always, "127.0.0.1"},
		{"::ffff:0.0.0.0", always, "this network"},
		{"64:ff9b::7f00:1", always, "NAT64 form of the loopback address 127.0.0.1"},
		{"2002:7f00:1::", always, "6to4 form of the loopback address 127.0.0.1"},
		{"64:ff9b::", always, "NAT64 form of the \"this network\""},

		{"127.0.0.2", private, "loopback address (127.0.0.0/8)"},
		{"127.255.255.255", private, "loopback"},
		{"::1", private, "loopback"},
		{"10.0.0.1", private, "private network address (10.0.0.0/8)"},
		{"172.16.0.1", private, "private network address (172.16.0.0/12)"},
		{"172.31.255.255", private, "private network"},
		{"192.168.0.1", private, "private network address (192.168.0.0/16)"},
		{"100.64.0.1", private, "carrier-grade NAT"},
		{"169.254.169.254", private, "link-local address (169.254.0.0/16)"},
		{"::ffff:10.0.0.1", private, "private network"},
		{"::ffff:169.254.169.254", private, "link-local"},
		{"64:ff9b::a00:1", private, "NAT64 form of a private network address (10.0.0.0/8)"},
		{"64:ff9b::a9fe:a9fe", private, "NAT64 form of a link-local address"},
		{"2002:a00:1::", private, "6to4 form of a private network address (10.0.0.0/8)"},
		{"2002:a9fe:a9fe::1", private, "6to4 form of a link-local address"},
		{"64:ff9b:1::1", private, "local-use NAT64"},
		{"::a00:1", private, "IPv4-compatible"},
		{"192.0.0.8", private, "IETF protocol assignment"},
		{"192.0.2.1", private, "documentation"},
		{"198.51.100.1", private, "documentation"},
		{"203.0.113.1", private, "documentation"},
		{"198.18.0.1", private, "benchmarking"},
		{"192.88.99.1", private, "6to4 relay"},
		{"224.0.0.1", private, "multicast"},
		{"239.255.255.250", private, "multicast"},
		{"255.255.255.255", private, "broadcast"},
		{"240.0.0.1", private, "reserved"},
		{"fd00::1", private, "unique local"},
		{"fc00::1", private, "unique local"},
		{"fe80::1", private, "link-local"},
		{"fe80::1%eth0", private, "link-local"},
		{"fec0::1", private, "site-local"},
		{"ff02::1", private, "multicast"},
		{"2001:db8::1", private, "documentation"},
		{"3fff::1", private, "documentation"},
		{"2001::1", private, "Teredo"},
		{"100::1", private, "discard-only"},
		{"4000::1", private, "outside global unicast"},

		{"8.8.8.8", public, ""},
		{"1.1.1.1", public, ""},
		{"172.32.0.1", public, ""},
		{"100.128.0.1", public, ""},
		{"::ffff:8.8.8.8", public, ""},
		{"2606:4700:4700::1111", public, ""},
		{"64:ff9b::808:808", public, ""},
		{"2002:808:808::1", public, ""},
	}

	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()

			addr := netip.MustParseAddr(tt.addr)

			check := func(policy *Policy, wantBlocked bool) {
				t.Helper()
				err := policy.CheckAddr(addr)
				if !wantBlocked {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, ErrBlockedAddress)
				var blocked *BlockedAddressError
				require.ErrorAs(t, err, &blocked)
				require.Contains(t, blocked.Reason, tt.reason)
				require.Equal(t, tt.kind == always, blocked.Always)
			}

			switch tt.kind {
			case public:
				check(nil, false)
				check(strictPolicy, false)
				check(privatePolicy, false)
				check(cidrPolicy, false)
			case always:
				check(nil, true)
				check(strictPolicy, true)
				check(privatePolicy, true)
				check(cidrPolicy, true)
			case private:
				check(nil, true)
				check(strictPolicy, true)
				check(privatePolicy, false)
			}
		})
	}

	t.Run("AllowedCIDRs", func(t *testing.T) {
		t.Parallel()

		listOnly := &Policy{AllowedCIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("127.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		}}
		for addr, wantBlocked := range map[string]bool{
			"10.0.0.1":           false,
			"::ffff:10.0.0.1":    false,
			"64:ff9b::a00:1":     false, // NAT64 form of a listed address
			"2002:a00:1::":       false, // 6to4 form of a listed address
			"127.0.0.2":          false,
			"::1":                false,
			"127.0.0.1":          true, // listed, but never allowed
			"169.254.169.254":    true,
			"192.168.0.1":        true,
			"64:ff9b::a9fe:a9fe": true,
			"8.8.8.8":            false,
		} {
			err := listOnly.CheckAddr(netip.MustParseAddr(addr))
			if wantBlocked {
				require.ErrorIs(t, err, ErrBlockedAddress, addr)
			} else {
				require.NoError(t, err, addr)
			}
		}

		require.NoError(t, onlyMappedPolicy.CheckAddr(netip.MustParseAddr("172.16.0.1")))
		require.NoError(t, cidrPolicy.CheckAddr(netip.MustParseAddr("169.254.169.254")), "0.0.0.0/0 lists it")
		require.ErrorIs(t, cidrPolicy.CheckAddr(netip.MustParseAddr("0.1.2.3")), ErrBlockedAddress)
	})

	t.Run("InvalidAddr", func(t *testing.T) {
		t.Parallel()

		require.ErrorIs(t, privatePolicy.CheckAddr(netip.Addr{}), ErrBlockedAddress)
	})

	t.Run("ErrorMessage", func(t *testing.T) {
		t.Parallel()

		err := strictPolicy.CheckAddr(netip.MustParseAddr("169.254.169.254"))
		require.EqualError(t, err, "address 169.254.169.254 is not allowed: it is a link-local address (169.254.0.0/16)")
	})
}
