package dashboard

// apiFIFOLine is a FIFO webhook's line as the API answers it: the dead
// delivery blocking it (nil when none) and how many wait behind its head.
type apiFIFOLine struct {
	BlockedBy *string `json:"blocked_by"`
	Waiting   int64   `json:"waiting"`
}
