package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The bench's receiver answers what webhookd's client sends (net/http here,
// as in outbound), keeps the connection alive, and refuses what it cannot
// read rather than guess.
func TestReceiver(t *testing.T) {
	s := &stage{}
	t.Cleanup(s.close)
	recv, url, err := s.startReceiver(true)
	require.NoError(t, err)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)

	post := func(eventID, body string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Mono-Event-Id", eventID)
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	before := time.Now()
	require.Equal(t, http.StatusInternalServerError, post("evt_1", `{"a":1}`), "failFirst: the first request of an event")
	require.Equal(t, http.StatusOK, post("evt_1", `{"a":1}`))
	require.Equal(t, http.StatusInternalServerError, post("evt_2", strings.Repeat("x", 100_000)))
	require.Equal(t, int64(3), recv.requests.Load())
	require.Equal(t, int64(1), recv.ok.Load())
	at, ok := recv.firstArrival("evt_1")
	require.True(t, ok)
	require.False(t, at.Before(before))
	_, ok = recv.firstArrival("evt_3")
	require.False(t, ok)

	// A chunked body is not read: 400, and the connection closed.
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(url, "/hook"), "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	status, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 400 Bad Request\r\n", status)
	require.Equal(t, int64(1), recv.bad.Load())
	require.Equal(t, int64(3), recv.requests.Load())
}
