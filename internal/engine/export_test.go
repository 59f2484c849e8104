package engine

import "github.com/mono/webhookd/internal/store"

// HandoffTargets are the targets a hand-off's first attempts will use
// without a load, by delivery id (tests compare them with GetTarget's).
func HandoffTargets(ho *Handoff) map[string]*store.Target {
	out := map[string]*store.Target{}
	for _, j := range ho.jobs {
		if t := j.target(); t != nil {
			out[j.deliveryID()] = t
		}
	}
	return out
}
