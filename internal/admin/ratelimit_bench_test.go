package admin

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mono/webhookd/internal/store"
)

// headerOnly is a ResponseWriter that keeps headers and drops the rest.
type headerOnly struct{ h http.Header }

func (w *headerOnly) Header() http.Header         { return w.h }
func (w *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerOnly) WriteHeader(int)             {}

// What the limiter adds to a request of a limited key that is within its
// budget: the bucket's arithmetic under its lock and the two RateLimit
// fields. `go test -run x -bench Charge ./internal/admin`.
func BenchmarkCharge(b *testing.B) {
	a := &API{limiter: newLimiter(time.Now), rates: rates{intakeAccount: Rate{PerSecond: 1e9, Burst: 1e9}}}
	b.Run("OneKey", func(b *testing.B) {
		p := &Principal{KeyID: "key_bench", Scope: store.ScopeAccount}
		w := &headerOnly{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			if !a.charge(w, p, budgetIntake, 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("ManyKeysParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &headerOnly{h: http.Header{}}
			i := 0
			for pb.Next() {
				i++
				p := &Principal{KeyID: "key_" + strconv.Itoa(i%1000), Scope: store.ScopeAccount}
				if !a.charge(w, p, budgetIntake, 1) {
					b.Fatal("refused")
				}
			}
		})
	})
}
