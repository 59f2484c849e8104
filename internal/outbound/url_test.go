package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPolicyValidateURL(t *testing.T) {
	t.Parallel()

	const (
		ok        = ""
		forbidden = URLErrorCodeForbiddenHost
		invalid   = URLErrorCodeInvalidURL
		noHost    = URLErrorCodeMissingHost
		private   = URLErrorCodePrivateAddress
		tooLong   = URLErrorCodeURLTooLong
		scheme    = URLErrorCodeUnsupportedScheme
		userinfo  = URLErrorCodeUserinfoNotAllowed
	)

	var (
		strictPolicy  = &Policy{}
		privatePolicy = &Policy{AllowPrivate: true}
		cidrPolicy    = &Policy{AllowedCIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("127.0.0.0/8"), // covers 127.0.0.1, which stays refused
			netip.MustParsePrefix("0.0.0.0/8"),   // refused whatever the list says
			netip.MustParsePrefix("::/127"),      // :: and ::1; :: stays refused
			netip.MustParsePrefix("fd00::/8"),
		}}
	)

	tests := []struct {
		raw string
		// want is the normalised URL when a policy accepts raw.
		want string
		// The error code under each policy, ok ("") if accepted.
		strict, allowPrivate, allowList string
	}{
		// Public hosts, normalised.
		{raw: "https://example.com/webhooks", want: "https://example.com/webhooks"},
		{raw: "HTTPS://EXAMPLE.COM/Webhooks?Token=AbC", want: "https://example.com/Webhooks?Token=AbC"},
		{raw: "https://example.com./hook", want: "https://example.com/hook"},
		{raw: "https://example.com:443/hook", want: "https://example.com/hook"},
		{raw: "http://example.com:80", want: "http://example.com/"},
		{raw: "https://example.com:80/", want: "https://example.com:80/"},
		{raw: "https://example.com:08443/", want: "https://example.com:8443/"},
		{raw: "https://example.com:8443/hook?token=abc&x=1#section", want: "https://example.com:8443/hook?token=abc&x=1"},
		{raw: "https://example.com?", want: "https://example.com/?"},
		{raw: "https://example.com/a%2Fb/p%20q?x=%20&y=ü", want: "https://example.com/a%2Fb/p%20q?x=%20&y=ü"},
		{raw: "https://example.com/ü", want: "https://example.com/%C3%BC"},
		{raw: "  https://example.com/hook\n", want: "https://example.com/hook"},
		{raw: "https://bücher.example/hook", want: "https://xn--bcher-kva.example/hook"},
		{raw: "https://xn--bcher-kva.example/hook", want: "https://xn--bcher-kva.example/hook"},
		{raw: "https://ＥＸＡＭＰＬＥ。com/", want: "https://example.com/"},
		{raw: "https://ex%41mple.com/", want: "https://example.com/"},
		{raw: "https://r3---sn-ab.googlevideo.com/", want: "https://r3---sn-ab.googlevideo.com/"},
		{raw: "https://my_host.example.com/", want: "https://my_host.example.com/"},
		{raw: "https://internal.corp.example/", want: "https://internal.corp.example/"}, // checked when dialled
		{raw: "https://8.8.8.8/hook", want: "https://8.8.8.8/hook"},
		{raw: "https://134744072/", want: "https://8.8.8.8/"},
		{raw: "https://0x8.0x8.0x8.0x8/", want: "https://8.8.8.8/"},
		{raw: "https://[2606:4700:4700::1111]/", want: "https://[2606:4700:4700::1111]/"},
		{raw: "https://[2606:4700:4700:0:0:0:0:1111]:443/", want: "https://[2606:4700:4700::1111]/"},
		{raw: "https://[::FFFF:8.8.8.8]:8443/", want: "https://8.8.8.8:8443/"},
		{raw: "https://[64:ff9b::808:808]/", want: "https://[64:ff9b::808:808]/"},
		{raw: "https://[2002:808:808::1]/", want: "https://[2002:808:808::1]/"},
		{raw: "http://172.32.0.1/", want: "http://172.32.0.1/"},

		// Refused whatever the policy says.
		{raw: "http://localhost/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://LOCALHOST.:8080/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://api.localhost/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://%6c%6fcalhost/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://ｌｏｃａｌｈｏｓｔ/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://localhost.localdomain/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://127.0.0.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://127.0.0.1:8080/hook", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://2130706433/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0x7f.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0X7F.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0x7f000001/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0177.0.0.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0177.0.0.01/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://127.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://127.0.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://127.0.0.1./", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://１２７.０.０.１/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://%31%32%37.0.0.1/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[::ffff:127.0.0.1]/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[::ffff:7f00:1]/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[64:ff9b::7f00:1]/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[2002:7f00:1::]/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0.0.0.0/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://0.1.2.3:9000/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[::]/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},
		{raw: "http://[0:0:0:0:0:0:0:0]:80/", strict: forbidden, allowPrivate: forbidden, allowList: forbidden},

		// Not public: refused unless AllowPrivate or the allow-list.
		{raw: "http://127.0.0.2:8080/hook", want: "http://127.0.0.2:8080/hook", strict: private},
		{raw: "http://127.2/", want: "http://127.0.0.2/", strict: private},
		{raw: "http://[::1]:8080/hook", want: "http://[::1]:8080/hook", strict: private},
		{raw: "http://10.0.0.1/", want: "http://10.0.0.1/", strict: private},
		{raw: "http://012.0.0.1/", want: "http://10.0.0.1/", strict: private},
		{raw: "http://167772161/", want: "http://10.0.0.1/", strict: private},
		{raw: "http://[::ffff:10.0.0.1]/", want: "http://10.0.0.1/", strict: private},
		{raw: "http://[64:ff9b::a00:1]/", want: "http://[64:ff9b::a00:1]/", strict: private},
		{raw: "http://[2002:a00:1::]/", want: "http://[2002:a00:1::]/", strict: private},
		{raw: "http://[fd00::1]/", want: "http://[fd00::1]/", strict: private},
		{raw: "http://172.16.0.1/", want: "http://172.16.0.1/", strict: private, allowList: private},
		{raw: "http://192.168.1.1/", want: "http://192.168.1.1/", strict: private, allowList: private},
		{raw: "http://100.64.0.1/", want: "http://100.64.0.1/", strict: private, allowList: private},
		{raw: "http://169.254.169.254/latest/meta-data/", want: "http://169.254.169.254/latest/meta-data/", strict: private, allowList: private},
		{raw: "http://0xa9fea9fe/", want: "http://169.254.169.254/", strict: private, allowList: private},
		{raw: "http://[::ffff:169.254.169.254]/", want: "http://169.254.169.254/", strict: private, allowList: private},
		{raw: "http://[fe80::1]/", want: "http://[fe80::1]/", strict: private, allowList: private},
		{raw: "http://[fc00::1]/", want: "http://[fc00::1]/", strict: private, allowList: private},
		{raw: "http://224.0.0.1/", want: "http://224.0.0.1/", strict: private, allowList: private},
		{raw: "http://255.255.255.255/", want: "http://255.255.255.255/", strict: private, allowList: private},
		{raw: "http://240.0.0.1/", want: "http://240.0.0.1/", strict: private, allowList: private},
		{raw: "http://192.0.2.1/", want: "http://192.0.2.1/", strict: private, allowList: private},
		{raw: "http://198.51.100.7/", want: "http://198.51.100.7/", strict: private, allowList: private},
		{raw: "http://203.0.113.9/", want: "http://203.0.113.9/", strict: private, allowList: private},
		{raw: "http://198.18.0.1/", want: "http://198.18.0.1/", strict: private, allowList: private},
		{raw: "http://[2001:db8::1]/", want: "http://[2001:db8::1]/", strict: private, allowList: private},
		{raw: "http://[ff02::1]/", want: "http://[ff02::1]/", strict: private, allowList: private},

		// Not a URL webhookd can post to.
		{raw: "", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "ftp://example.com/", strict: scheme, allowPrivate: scheme, allowList: scheme},
		{raw: "example.com/hook", strict: scheme, allowPrivate: scheme, allowList: scheme},
		{raw: "localhost:8080/hook", strict: scheme, allowPrivate: scheme, allowList: scheme},
		{raw: "javascript:alert(1)", strict: scheme, allowPrivate: scheme, allowList: scheme},
		{raw: "//example.com/hook", strict: scheme, allowPrivate: scheme, allowList: scheme},
		{raw: "http:///path", strict: noHost, allowPrivate: noHost, allowList: noHost},
		{raw: "http://:8080/", strict: noHost, allowPrivate: noHost, allowList: noHost},
		{raw: "http:example.com", strict: noHost, allowPrivate: noHost, allowList: noHost},
		{raw: "https://user:pass@example.com/", strict: userinfo, allowPrivate: userinfo, allowList: userinfo},
		{raw: "https://@example.com/", strict: userinfo, allowPrivate: userinfo, allowList: userinfo},
		{raw: "https://example.com/" + strings.Repeat("a", URLLengthMax), strict: tooLong, allowPrivate: tooLong, allowList: tooLong},
		{raw: "https://exa mple.com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://example.com/a b", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://example.com\\@127.0.0.1/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://exa%00mple.com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://exa%2fmple.com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://example.com:0/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "https://example.com:65536/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://1.2.3.4.5/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://example.123/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://0x100000000/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://256.0.0.1/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://09.0.0.1/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://[fe80::1%25eth0]/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://[1.2.3.4]/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://::1/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://a..b.com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://-a.com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
		{raw: "http://a" + strings.Repeat("b", 63) + ".com/", strict: invalid, allowPrivate: invalid, allowList: invalid},
	}

	for _, tt := range tests {
		for _, pc := range []struct {
			name   string
			policy *Policy
			code   string
		}{
			{"Strict", strictPolicy, tt.strict},
			{"AllowPrivate", privatePolicy, tt.allowPrivate},
			{"AllowedCIDRs", cidrPolicy, tt.allowList},
		} {
			t.Run(fmt.Sprintf("%s/%q", pc.name, tt.raw), func(t *testing.T) {
				t.Parallel()

				got, err := pc.policy.ValidateURL(tt.raw)
				if pc.code == ok {
					require.NoError(t, err)
					require.Equal(t, tt.want, got)

					again, err := pc.policy.ValidateURL(got)
					require.NoError(t, err)
					require.Equal(t, got, again, "a normalised URL must normalise to itself")
					return
				}

				require.Error(t, err)
				require.Empty(t, got)
				require.ErrorIs(t, err, ErrInvalidURL)
				var urlErr *URLError
				require.ErrorAs(t, err, &urlErr)
				require.Equal(t, pc.code, urlErr.Code, "message: %s", urlErr.Message)
				require.NotEmpty(t, urlErr.Message)
				require.NotEmpty(t, urlErr.detail)
			})
		}
	}
}

func TestPolicyValidateURLMessages(t *testing.T) {
	t.Parallel()

	policy := &Policy{}

	t.Run("NamesTheForbiddenHost", func(t *testing.T) {
		t.Parallel()

		_, err := policy.ValidateURL("http://localhost:8080/hook")
		require.EqualError(t, err, "the host localhost is not allowed: webhooks must be reachable on the public internet")

		_, err = policy.ValidateURL("http://0x7f.1/hook")
		require.EqualError(t, err, "the host 0x7f.1 (127.0.0.1) is not allowed: webhooks must be reachable on the public internet")

		_, err = policy.ValidateURL("http://169.254.169.254/latest")
		require.EqualError(t, err, "the host 169.254.169.254 is a link-local address (169.254.0.0/16): webhooks must be reachable on the public internet")
	})

	t.Run("NeverRepeatsCredentialsPathOrQuery", func(t *testing.T) {
		t.Parallel()

		for _, raw := range []string{
			"https://user:SECRET123@example.com/hook",
			"http://10.0.0.1/PATHSECRET?token=SECRET123",
			"http://localhost/PATHSECRET?token=SECRET123",
			"ftp://example.com/PATHSECRET?token=SECRET123",
			"http://example.com:99999/PATHSECRET?token=SECRET123",
			"http://1.2.3.4.5/PATHSECRET?token=SECRET123",
			"https://example.com/" + strings.Repeat("SECRET123", 300),
		} {
			_, err := policy.ValidateURL(raw)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "SECRET123", raw)
			require.NotContains(t, err.Error(), "PATHSECRET", raw)
		}
	})

	t.Run("DetailNeverNamesTheHost", func(t *testing.T) {
		t.Parallel()

		for _, raw := range []string{
			"http://localhost/", "http://127.0.0.1/", "http://10.0.0.1/",
			"http://exa%2fmple.com/", "http://1.2.3.4.5/", "ftp://example.com/",
		} {
			_, err := policy.ValidateURL(raw)
			var urlErr *URLError
			require.ErrorAs(t, err, &urlErr)
			for _, part := range []string{"localhost", "127.0.0.1", "10.0.0.1", "exa", "1.2.3.4.5", "ftp"} {
				require.NotContains(t, urlErr.detail, part, raw)
			}
		}
	})
}

func TestPolicyValidateURLNilPolicy(t *testing.T) {
	t.Parallel()

	var policy *Policy
	got, err := policy.ValidateURL("https://example.com")
	require.NoError(t, err)
	require.Equal(t, "https://example.com/", got)

	_, err = policy.ValidateURL("http://10.0.0.1/")
	var urlErr *URLError
	require.ErrorAs(t, err, &urlErr)
	require.Equal(t, URLErrorCodePrivateAddress, urlErr.Code)
}

func TestParseIPv4(t *testing.T) {
	t.Parallel()

	tests := []struct {
		host string
		want string // "" when invalid
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1"},
		{"0x", "0.0.0.0"},
		{"0", "0.0.0.0"},
		{"00", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"0xffffffff", "255.255.255.255"},
		{"037777777777", "255.255.255.255"},
		{"1.16777215", "1.255.255.255"},
		{"1.2.65535", "1.2.255.255"},
		{"4294967296", ""},
		{"0x100000000", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"1.2.3.256", ""},
		{"256.1", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"0xg", ""},
		{"1..2", ""},
		{"-1", ""},
		{"+1", ""},
		{"1_000", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()

			addr, ok := parseIPv4(tt.host)
			if tt.want == "" {
				require.False(t, ok, "parsed as %s", addr)
				return
			}
			require.True(t, ok)
			require.Equal(t, tt.want, addr.String())
		})
	}
}

func FuzzValidateURL(f *testing.F) {
	for _, seed := range []string{
		"https://example.com/webhooks?token=abc#frag",
		"HTTP://EXAMPLE.COM.:80/a%2Fb",
		"http://2130706433/",
		"http://0x7f.1/",
		"http://0177.0.0.1/",
		"http://127.1/",
		"http://[::ffff:127.0.0.1]/",
		"http://[64:ff9b::a00:1]/",
		"http://bücher.example/ü?ü=1",
		"http://%6c%6fcalhost/",
		"http://１２７.０.０.１/",
		"https://user:pass@example.com/",
		"http:///path",
		"http://[fe80::1%25eth0]/",
	} {
		f.Add(seed)
	}

	policies := []*Policy{
		{},
		{AllowPrivate: true},
		{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}

	f.Fuzz(func(t *testing.T, raw string) {
		for _, policy := range policies {
			got, err := policy.ValidateURL(raw)
			if err != nil {
				var urlErr *URLError
				require.ErrorAs(t, err, &urlErr)
				require.NotEmpty(t, urlErr.Code)
				require.NotEmpty(t, urlErr.Message)
				require.Empty(t, got)
				continue
			}

			require.LessOrEqual(t, len(got), URLLengthMax)
			again, err := policy.ValidateURL(got)
			require.NoError(t, err, "normalised %q from %q", got, raw)
			require.Equal(t, got, again, "normalised from %q", raw)

			// The host the client will dial is what was checked.
			host := strings.TrimPrefix(strings.TrimPrefix(got, "http://"), "https://")
			host = host[:strings.IndexByte(host, '/')]
			if addrPort, err := netip.ParseAddrPort(host); err == nil {
				require.NoError(t, policy.CheckAddr(addrPort.Addr()))
			} else if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
				require.NoError(t, policy.CheckAddr(addr))
			}
			require.NotEqual(t, "localhost", strings.Split(host, ":")[0])
		}
	})
}

func ExamplePolicy_ValidateURL() {
	policy := &Policy{}

	normalized, err := policy.ValidateURL("HTTPS://Bücher.Example.:443/webhooks?token=abc#top")
	fmt.Println(normalized, err)

	_, err = policy.ValidateURL("http://0x7f.1/webhooks")
	var urlErr *URLError
	if errors.As(err, &urlErr) {
		fmt.Println(urlErr.Code + ": " + urlErr.Message)
	}

	// Output:
	// https://xn--bcher-kva.example/webhooks?token=abc <nil>
	// forbidden_host: the host 0x7f.1 (127.0.0.1) is not allowed: webhooks must be reachable on the public internet
}
