package testdns

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDNSServer(t *testing.T) {
	t.Parallel()

	resolver := Start(t, map[string][]netip.Addr{
		"hooks.example.test": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")},
	})

	addrs, err := resolver.LookupNetIP(t.Context(), "ip", "hooks.example.test")
	require.NoError(t, err)
	require.ElementsMatch(t, []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}, addrs)

	_, err = resolver.LookupNetIP(t.Context(), "ip", "missing.example.test")
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr)
	require.True(t, dnsErr.IsNotFound)
}
