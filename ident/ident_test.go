package ident

import (
	"testing"

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
