package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/mono/webhookd/apitype"
	"github.com/mono/webhookd/internal/ident"
	"github.com/mono/webhookd/internal/store"
)

// DeliveryAttemptsRequest asks for the attempts of a page of deliveries
// (a listing's, ListDeliveries), read in one query.
type DeliveryAttemptsRequest struct {
	// IDs are the deliveries, at most LimitMax.
	IDs []string
	// ExcerptMax is how many bytes of each response excerpt to return
	// (cut before it is made valid UTF-8); 0 returns it whole.
	ExcerptMax int
}

// ListedAttempt is an attempt as a listing shows it.
type ListedAttempt struct {
	apitype.Attempt
	// ExcerptCut says ResponseExcerpt is the first ExcerptMax bytes of a
	// longer one.
	ExcerptCut bool
}

// DeliveryAttempts is the attempts of each delivery asked for, oldest
// first (none for a delivery without attempts).
type DeliveryAttempts struct {
	Attempts map[string][]ListedAttempt
}

// ListDeliveryAttempts is what GET /v1/deliveries/{id} shows of each
// delivery's attempts, for a page of deliveries at once, and is admitted
// as that route (opGetDelivery): admin and account keys, one management
// charge. A malformed, unknown or another account's delivery is 404, as
// GET /v1/deliveries/{id} answers it; more than LimitMax ids are 422.
func (a *API) ListDeliveryAttempts(ctx context.Context, p *Principal, req *DeliveryAttemptsRequest) (*DeliveryAttempts, error) {
	if e := a.admit(ctx, p, opGetDelivery); e != nil {
		return nil, e
	}
	if len(req.IDs) > LimitMax {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_ids", Field: "ids",
			Message: fmt.Sprintf("at most %d deliveries at once, not %d", LimitMax, len(req.IDs))}
	}
	for _, id := range req.IDs {
		if e := checkID(id, ident.Delivery, "delivery"); e != nil {
			return nil, e
		}
	}
	out := &DeliveryAttempts{Attempts: make(map[string][]ListedAttempt, len(req.IDs))}
	if len(req.IDs) == 0 {
		return out, nil
	}
	// One byte more than shown says whether the excerpt was cut.
	read := math.MaxInt32
	if req.ExcerptMax > 0 {
		read = req.ExcerptMax + 1
	}
	byID, err := store.DeliveriesAttempts(ctx, a.pool, req.IDs, read)
	if err != nil {
		return nil, a.internal("error loading attempts", err)
	}
	for _, id := range req.IDs {
		d, found := byID[id]
		if _, done := out.Attempts[id]; done {
			continue // named twice
		}
		if !found {
			err = store.ErrNotFound
		}
		if e := a.loadedFor(p, "delivery", id, err, func() string { return d.AccountID }); e != nil {
			return nil, e
		}
		for i := range d.Attempts {
			at := &d.Attempts[i]
			cut := req.ExcerptMax > 0 && len(at.ResponseExcerpt) > req.ExcerptMax
			if cut {
				at.ResponseExcerpt = at.ResponseExcerpt[:req.ExcerptMax]
			}
			out.Attempts[id] = append(out.Attempts[id], ListedAttempt{Attempt: attemptOf(at), ExcerptCut: cut})
		}
	}
	return out, nil
}
