package testreceiver

import (
	"net"
	"testing"
)

// Raw listens on 127.0.0.2 until the test ends and hands each accepted
// connection to serve, on a goroutine of its own, closing it when serve
// returns. It is for receivers that misbehave below HTTP. It returns the
// listener's host:port.
func Raw(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("testreceiver: error listening on 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}
