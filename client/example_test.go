package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/mono/webhookd/client"
)

// A producer sends an event. The client makes an idempotency key for the
// call, so its retries never create a second event.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080", os.Getenv("WEBHOOKD_API_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	ev, err := c.SendEvent(ctx, &client.EventParams{
		AccountID: "acct_1",
		Type:      "payment.succeeded",
		Data:      map[string]string{"payment_id": "pay_123", "amount": "12.50"},
	})
	var apiErr *client.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity:
		log.Fatalf("refused: field %s: %s", apiErr.Field, apiErr.Message)
	case err != nil:
		log.Fatal(err) // network errors, 429 and 5xx were retried already
	}
	fmt.Println("event", ev.ID, "to", len(ev.Deliveries), "webhooks")
}

// A refused request is an *APIError naming the field at fault. It is not
// retried.
func ExampleAPIError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"error":{"code":"invalid_scheme","message":"url must be http or https","field":"url"}}`)
	}))
	defer srv.Close()

	c, err := client.New(srv.URL, "key", nil)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreateWebhook(context.Background(), &client.CreateWebhookParams{AccountID: "acct_1", URL: "ftp://x"})
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code, apiErr.Field)
		fmt.Println(apiErr)
	}
	// Output:
	// 422 invalid_scheme url
	// webhookd: 422 invalid_scheme (url): url must be http or https
}
