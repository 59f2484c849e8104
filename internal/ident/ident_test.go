package ident

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	t.Parallel()

	a, b := New(Delivery), New(Delivery)
	require.True(t, Valid(Delivery, a))
	require.False(t, Valid(Event, a))
	require.NotEqual(t, a, b)
	require.Less(t, a, b, "UUIDv7 identifiers sort by creation")
	require.NoError(t, Check(Delivery, a))
	require.Error(t, Check(Webhook, a))
}

func TestValid(t *testing.T) {
	t.Parallel()

	for _, s := range []string{"", "dlv_", "dlv_xyz", "DLV_0193a0b0c0d0e0f00112233445566778", "dlv_0193A0B0C0D0E0F00112233445566778", "dlv_0193a0b0c0d0e0f0011223344556677", "dlv_0193a0b0c0d0e0f001122334455667788"} {
		require.False(t, Valid(Delivery, s), s)
	}
	require.True(t, Valid(Delivery, "dlv_0193a0b0c0d0e0f00112233445566778"))
}

func TestTime(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := New(Delivery)
	after := time.Now()
	got, ok := Time(id)
	if !ok {
		t.Fatalf("Time(%q) not ok", id)
	}
	if got.Before(before) || got.After(after) {
		t.Fatalf("Time(%q) = %v, want between %v and %v", id, got, before, after)
	}
	if got.Location() != time.UTC {
		t.Fatalf("Time(%q) is in %v, want UTC", id, got.Location())
	}
	for _, bad := range []string{"", "dlv_", "dlv_zz", "dlv_0193" + strings.Repeat("0", 28), "dlv_" + strings.Repeat("g", 32)} {
		if _, ok := Time(bad); ok {
			t.Errorf("Time(%q) ok, want not ok", bad)
		}
	}
}
