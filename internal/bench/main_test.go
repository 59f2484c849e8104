package bench

import (
	"os"
	"testing"
)

// TestMain lets the external receiver's tests start this test binary as
// the receiver process, as `webhookd bench -receiver external` starts
// webhookd.
func TestMain(m *testing.M) {
	ServeExternalReceiverIfAsked()
	os.Exit(m.Run())
}
