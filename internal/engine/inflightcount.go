package engine

// InFlight is how many attempts of this process hold a slot now: sending,
// or about to. It is webhookd_attempts_in_flight, which returns to zero
// when the process is idle, whatever went wrong meanwhile (a slot never
// released would show here for ever).
func (w *Worker) InFlight() int {
	f := w.inflight
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.hooks {
		n += h.n
	}
	return n
}
