package signaling

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"lectern/auth"
	"lectern/sfu"
)

// FuzzMediaOffer posts SDP offers to WHIP (a teacher publishing) and
// WHEP (a student watching) on a server with a real engine, through the
// HTTP handlers, CheckPublishOffer, and pion's offer handling in
// NewPublisher and NewViewer. Every answer is 201 or a 4xx; a session
// made is deleted at once and leaves no publisher, viewer, session nor
// goroutine behind. Candidates other than loopback addresses are taken
// out of the offer, so ICE checks never leave the machine. Seeds: pion
// offers, gathered and trickled, send-only and receive-only.
func FuzzMediaOffer(f *testing.F) {
	srv, signer, eng := fuzzServer(f)
	h := srv.Handler()
	base := -1
	f.Fuzz(func(t *testing.T, sdp string, whep bool) {
		if base < 0 {
			base = runtime.NumGoroutine()
		}
		path, role := "/whip/fuzz", auth.RoleTeacher
		if whep {
			path, role = "/whep/fuzz", auth.RoleStudent
		}
		tok, err := signer.Mint(auth.Claims{Room: "fuzz", Role: role, Participant: "p", Name: "Fuzz"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		res := serve(h, http.MethodPost, path, tok, loopbackOnly(sdp))
		switch {
		case res.Code == http.StatusCreated:
			loc := res.Header().Get("Location")
			if del := serve(h, http.MethodDelete, loc, tok, ""); del.Code != http.StatusOK {
				t.Fatalf("DELETE %s: %d %s", loc, del.Code, del.Body)
			}
		case res.Code < 400 || res.Code >= 500:
			t.Fatalf("offer answered %d: %s", res.Code, res.Body)
		}
		if st := eng.Stats(); st.Publishers != 0 || st.Subscribers != 0 || srv.sessions.count() != 0 {
			t.Fatalf("left behind: %+v, %d sessions", st, srv.sessions.count())
		}
		waitGoroutines(t, base+20)
	})
}

// fuzzServer is a server with an engine on loopback, for the fuzz
// targets that go through the HTTP handlers.
func fuzzServer(f *testing.F) (*Server, *auth.Signer, *sfu.Engine) {
	signer, err := auth.NewSigner([]byte(testSecret))
	if err != nil {
		f.Fatal(err)
	}
	eng, err := sfu.NewEngine(sfu.Config{TCPPort: -1, PublicIP: "127.0.0.1", Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{Engine: eng, Signer: signer, AuthMode: AuthTokens, Logger: zerolog.Nop(),
		Registry: prometheus.NewRegistry(), Web: testWeb()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = eng.Close()
	})
	return srv, signer, eng
}

func serve(h http.Handler, method, path, token, sdp string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(sdp))
	r.Header.Set("Authorization", "Bearer "+token)
	if sdp != "" {
		r.Header.Set("Content-Type", ctypeSDP)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// loopbackOnly drops the candidate lines whose address is not a loopback
// IP literal: pion would send checks to them, or resolve names.
func loopbackOnly(sdp string) string {
	lines := strings.Split(sdp, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if i := strings.Index(l, "candidate:"); i >= 0 {
			f := strings.Fields(l[i:])
			if len(f) < 5 {
				continue
			}
			if a, err := netip.ParseAddr(f[4]); err != nil || !a.IsLoopback() {
				continue
			}
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

// waitGoroutines polls until at most n goroutines run; peer connections
// stop theirs shortly after Close returns.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, more than %d, 10 s after the session ended", runtime.NumGoroutine(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
