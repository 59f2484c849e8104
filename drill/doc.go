// Package drill holds webhookd's reliability drills: repeatable fault
// injections that check webhookd's promise — an accepted event is delivered
// or visibly dead, never silently lost, and nothing a receiver or a caller
// does can wedge it.
//
// The drills are tests. `go test ./drill` runs a short variant of each (a
// few thousand events, two worker kills, a small caller storm) in about a
// minute; `make drill` runs the full ones (go test -run TestDrill ./drill
// -args -drill.full) and prints the table that RELIABILITY.md records.
// Every drill starts its own webhookd processes (the binary built from
// this tree), its own receivers on 127.0.0.2 and its own database, bounds
// every loop in count and time, and sends nothing outside 127.0.0.0/8 and
// the network namespaces it makes (the partition drills, internal/netns).
//
// A drill fails only on loss, corruption or a wedged process. Timings,
// throughput and memory are reported as measurements, never asserted.
package drill
