package signer

import (
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzSignVerify signs arbitrary bodies with arbitrary secrets and checks
// the round trip: the header parses back to the time and MACs signed, it
// verifies under each secret, and any change to the body or a wrong secret
// is ErrNoValidSignature.
func FuzzSignVerify(f *testing.F) {
	f.Add("whsec_example", "whsec_older", int64(vectorT), []byte(vectorBody))
	f.Add("", "", int64(0), []byte{})
	f.Add("whsec_ü\x00,v1=", "t=1", int64(math.MaxInt64), []byte("\xff\xfe,v1=00"))
	f.Add("whsec_a", "whsec_a", int64(1), []byte(`{"event":{"data":{},"type":"a"},"timestamp":"2022-12-29T15:42:08.325158Z"}`))
	f.Fuzz(func(t *testing.T, secret, older string, unix int64, body []byte) {
		if unix < 0 {
			unix = -(unix + 1) // a signature time is never before 1970
		}
		at := time.Unix(unix, 0)
		header := Sign(at, body, secret, older)

		sig, err := Parse(header)
		require.NoError(t, err, header)
		require.Equal(t, unix, sig.Timestamp.Unix())
		require.Len(t, sig.V1, 2)
		require.Equal(t, Compute(secret, unix, body), hex.EncodeToString(sig.V1[0]))
		require.Equal(t, Compute(older, unix, body), hex.EncodeToString(sig.V1[1]))

		require.NoError(t, VerifyIgnoringTolerance(header, body, secret))
		require.NoError(t, VerifyIgnoringTolerance(header, body, older))
		require.NoError(t, Verify(header, body, secret, at, 0))
		if unix < math.MaxInt64-int64(ToleranceDefault/time.Second)-1 {
			require.ErrorIs(t, Verify(header, body, secret, at.Add(ToleranceDefault+time.Second), 0), ErrTooOld)
		}

		other := secret + "x"
		if other != older {
			require.ErrorIs(t, VerifyIgnoringTolerance(header, body, other), ErrNoValidSignature)
		}
		changed := append(append([]byte(nil), body...), '\n')
		require.ErrorIs(t, VerifyIgnoringTolerance(header, changed, secret), ErrNoValidSignature)

		// A receiver that splits on commas and trims spaces still reads it.
		spaced := strings.ReplaceAll(header, ",", ", ")
		require.NoError(t, VerifyIgnoringTolerance(spaced, body, older))
	})
}

// FuzzParseCanonical checks that whatever Parse accepts means exactly what
// its canonical form means: re-serialising the parsed header and parsing it
// again gives the same time and MACs, and Verify's answer is one of its
// documented errors.
func FuzzParseCanonical(f *testing.F) {
	f.Add("t=1672774221,v1="+vectorV1, []byte(vectorBody), "whsec_example")
	f.Add("t=1672774221, v1="+vectorV1+", v0=abc,v1=zz", []byte(vectorBody), "whsec_example")
	f.Add("v1="+vectorV1+",t=01672774221", []byte(vectorBody), "whsec_example")
	f.Add("t=+1,t=2", []byte{}, "")
	f.Add("t=9223372036854775807,v1=", []byte("x"), "k")
	f.Add("t=1,=,v1", []byte("x"), "k")
	f.Fuzz(func(t *testing.T, header string, body []byte, secret string) {
		err := VerifyIgnoringTolerance(header, body, secret)
		require.True(t, err == nil || errors.Is(err, ErrMalformedHeader) || errors.Is(err, ErrNoValidSignature), "unexpected error %v", err)

		sig, perr := Parse(header)
		if perr != nil {
			require.ErrorIs(t, perr, ErrMalformedHeader)
			require.ErrorIs(t, err, ErrMalformedHeader)
			return
		}
		require.GreaterOrEqual(t, sig.Timestamp.Unix(), int64(0))

		var b strings.Builder
		b.WriteString("t=" + strconv.FormatInt(sig.Timestamp.Unix(), 10))
		for _, mac := range sig.V1 {
			require.Len(t, mac, 32)
			b.WriteString(",v1=" + hex.EncodeToString(mac))
		}
		again, aerr := Parse(b.String())
		require.NoError(t, aerr, b.String())
		require.Equal(t, sig.Timestamp, again.Timestamp)
		require.Equal(t, sig.V1, again.V1)

		// The canonical form verifies exactly when the original does.
		require.Equal(t, err, VerifyIgnoringTolerance(b.String(), body, secret))
	})
}
