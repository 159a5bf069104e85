package signaling

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"lectern/auth"
)

// TestNoLeakAfterJoinLeave is not parallel: goleak compares against the
// goroutines present when it starts, so no other test may start any.
func TestNoLeakAfterJoinLeave(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	srv, err := New(Options{Signer: signer, AuthMode: AuthOpen, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	hs := newEnvFor(t, srv, signer)
	teacher, _ := hs.join(hs.token("leak", auth.RoleTeacher, "t", "Tess"))
	for i := range 50 {
		c, _ := hs.join(hs.token("leak", auth.RoleStudent, fmt.Sprintf("s%d", i), "Sam"))
		c.send(typeChat, "", chatData{Text: "hi"})
		if i%2 == 0 {
			c.send(typeLeave, "", nil)
			require.Equal(t, websocket.CloseNormalClosure, c.closeCode())
		} else {
			_ = c.ws.Close() // vanish without a close frame
			<-c.done
		}
	}
	require.Eventually(t, func() bool { return srv.connCount() == 1 }, waitFor, 5*time.Millisecond)
	require.Eventually(t, func() bool { return teacher.count(typeParticipantLeft) == 50 }, waitFor, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.Equal(t, websocket.CloseGoingAway, teacher.closeCode())
	hs.http.Close()
	hs.http.Client().CloseIdleConnections()
}
