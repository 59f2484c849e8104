package signer_test

import (
	"fmt"
	"time"

	"github.com/mono/webhookd/signer"
)

// Signing the seed's example body with the secret whsec_example at
// t=1672774221. The digest is HMAC-SHA256(secret, "<t>.<raw body>").
func ExampleSign() {
	body := []byte(`{"respose_body": "example"}`)
	header := signer.Sign(time.Unix(1672774221, 0), body, "whsec_example")
	fmt.Println(signer.Header + ": " + header)
	// Output:
	// Mono-Signature: t=1672774221,v1=e5f32494f098b1675866ad976dc6f6f29ff664be72ecec58ced6eb86c4cbd2d8
}

// A receiver checks the header against the raw body it read, its secret and
// the current time (five minutes' tolerance by default).
func ExampleVerify() {
	body := []byte(`{"event":{"data":{"amount":240000},"type":"bank_transfer_approved"},"timestamp":"2022-12-29T15:42:08.325158Z"}`)
	now := time.Unix(1672328528, 0)
	header := signer.Sign(now, body, "whsec_example")

	fmt.Println(signer.Verify(header, body, "whsec_example", now.Add(time.Minute), 0))
	fmt.Println(signer.Verify(header, body, "whsec_wrong", now, 0))
	fmt.Println(signer.Verify(header, body, "whsec_example", now.Add(time.Hour), 0))
	// Output:
	// <nil>
	// no valid v1 signature in Mono-Signature header
	// Mono-Signature timestamp is outside the tolerance
}
