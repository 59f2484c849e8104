package bench

import (
	"os"
	"testing"
)

// TestMain lets the external receiver's and the worker process's tests
// start this test binary as the receiver or worker process, as `webhookd
// bench -receiver external` and `-worker process` start webhookd.
func TestMain(m *testing.M) {
	ServeChildIfAsked()
	os.Exit(m.Run())
}
