package apitype

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeyStateAt(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	before, after := now.Add(-time.Second), now.Add(time.Second)
	for _, tc := range []struct {
		name             string
		revoked, expires *time.Time
		want             string
		works            bool
	}{
		{"live", nil, nil, KeyStateLive, true},
		{"rotated, in its grace", nil, &after, KeyStateRotated, true},
		{"rotated, grace ends now", nil, &now, KeyStateExpired, false},
		{"rotated, past its grace", nil, &before, KeyStateExpired, false},
		{"revoked", &before, nil, KeyStateRevoked, false},
		{"revoked while rotated", &before, &after, KeyStateRevoked, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := KeyStateAt(tc.revoked, tc.expires, now)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.works, KeyWorks(got))
		})
	}
}
