package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// refIPv4 is a deliberately plain reading of the inet_aton notations
// parseIPv4 accepts (one to four parts, each decimal, octal with a leading 0
// or hexadecimal with a leading 0x; the last part fills the remaining
// bytes), written digit by digit so that it shares nothing with strconv.
func refIPv4(host string) (uint32, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return 0, false
	}
	values := make([]uint64, len(parts))
	for i, p := range parts {
		base, digits := uint64(10), p
		switch {
		case strings.HasPrefix(p, "0x"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		case p == "":
			return 0, false
		}
		var v uint64
		for _, c := range []byte(digits) {
			var d uint64
			switch {
			case c >= '0' && c <= '9':
				d = uint64(c - '0')
			case c >= 'a' && c <= 'f':
				d = uint64(c-'a') + 10
			case c >= 'A' && c <= 'F':
				d = uint64(c-'A') + 10
			default:
				return 0, false
			}
			if d >= base {
				return 0, false
			}
			v = v*base + d
			if v > 1<<32 {
				return 0, false
			}
		}
		values[i] = v
	}
	var ip uint64
	last := len(values) - 1
	for i, v := range values[:last] {
		if v > 255 {
			return 0, false
		}
		ip |= v << (8 * (3 - i))
	}
	if values[last] >= 1<<(8*(4-last)) {
		return 0, false
	}
	return uint32(ip | values[last]), true
}

// FuzzParseIPv4 compares parseIPv4 with the reference reading above on
// arbitrary host strings: the dial guard and the create-time check depend
// on both agreeing about which address a numeric host names.
func FuzzParseIPv4(f *testing.F) {
	for _, seed := range []string{
		"127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x", "0x.0x.0x.0x",
		"4294967295", "4294967296", "0xffffffff", "0x100000000", "037777777777", "08", "1.2.3.4.5",
		"1..2", "", ".", "0xg", "1_000", "+1", "-1", "0x0x1", "00000000000000000000001", "255.255.65535",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		// Hosts are lowercased before they get here (normalisation).
		host = strings.ToLower(host)
		got, ok := parseIPv4(host)
		want, wantOK := refIPv4(host)
		require.Equal(t, wantOK, ok, "host %q: parseIPv4 says %v (%s)", host, ok, got)
		if !ok {
			return
		}
		require.True(t, got.Is4())
		b := got.As4()
		require.Equal(t, want, uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]), "host %q", host)
	})
}

// FuzzIPv4Spellings writes one address in every notation a URL may use and
// checks that ValidateURL reads each as that address: normalised to its
// dotted-decimal form, refused or allowed exactly as the address itself is.
func FuzzIPv4Spellings(f *testing.F) {
	for _, seed := range []uint32{0x7f000001, 0x7f000002, 0x0a000001, 0xa9fea9fe, 0x08080808, 0, 0xffffffff, 0x64400001} {
		f.Add(seed, uint8(0))
	}
	policies := []*Policy{{}, {AllowPrivate: true}}
	f.Fuzz(func(t *testing.T, ip uint32, zeros uint8) {
		a, b, c, d := ip>>24, ip>>16&0xff, ip>>8&0xff, ip&0xff
		pad := strings.Repeat("0", int(zeros%4))
		spellings := []string{
			fmt.Sprintf("%d.%d.%d.%d", a, b, c, d),
			strconv.FormatUint(uint64(ip), 10),
			fmt.Sprintf("0x%s%x", pad, ip),
			fmt.Sprintf("0%s%o", pad, ip),
			fmt.Sprintf("%d.%d", a, ip&0xffffff),
			fmt.Sprintf("%d.%d.%d", a, b, ip&0xffff),
			fmt.Sprintf("0x%x.0%o.%d.0x%s%x", a, b, c, pad, d),
			fmt.Sprintf("%d.%d.%d.%d.", a, b, c, d),
			fmt.Sprintf("0X%X", ip),
		}
		addr := netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
		for _, policy := range policies {
			want, wantErr := policy.ValidateURL("http://" + addr.String() + "/hook")
			for _, s := range spellings {
				got, err := policy.ValidateURL("http://" + s + "/hook")
				if wantErr != nil {
					require.Error(t, err, "%s spelt %s", addr, s)
					require.Equal(t, urlCode(wantErr), urlCode(err), "%s spelt %s", addr, s)
					continue
				}
				require.NoError(t, err, "%s spelt %s", addr, s)
				require.Equal(t, want, got, "%s spelt %s", addr, s)
			}
		}
	})
}

func urlCode(err error) string {
	var e *URLError
	if errors.As(err, &e) {
		return e.Code
	}
	return err.Error()
}
