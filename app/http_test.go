package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// Connections that trickle their request headers are closed at the
// header timeout, each of them, rather than held for as long as they send.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	w, err := listen("127.0.0.1:0", "", "", zerolog.Nop())
	require.NoError(t, err)
	w.headerTimeout = 300 * time.Millisecond
	w.serve(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(rw, "ok") }))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, w.shutdown(ctx))
	})
	const n = 20
	held := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held[i] = trickleHeaders(w.addr().String())
		}()
	}
	wg.Wait()
	for i, d := range held {
		require.Less(t, d, 2*time.Second, "connection %d held %s", i, d)
	}
}

// trickleHeaders sends a header line a byte every 50 ms, for at most 4 s,
// and returns how long the server kept the connection open.
func trickleHeaders(addr string) time.Duration {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return time.Hour
	}
	defer c.Close()
	_, _ = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Slow: ", addr)
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(c))
		close(closed)
	}()
	deadline := time.After(4 * time.Second)
	for {
		select {
		case <-closed:
			return time.Since(start)
		case <-deadline:
			return time.Since(start)
		case <-time.After(50 * time.Millisecond):
			_, _ = c.Write([]byte("a"))
		}
	}
}
