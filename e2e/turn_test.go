package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

// startTURNServer runs a node with the embedded TURN server on free ports.
func startTURNServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, "tokens", func(c *config.Config) {
		c.TURN, c.TURNUDPPort, c.TURNTCPPort, c.TURNTLSPort = true, 0, 0, -1
	})
}

// relayOnlyPC is a loopback peer connection that may use nothing but the
// given TURN servers (ICETransportPolicyRelay).
func relayOnlyPC(t *testing.T, servers []webrtc.ICEServer, opts client.APIOptions) *webrtc.PeerConnection {
	t.Helper()
	opts.Logger = clientLogger(t)
	api, err := client.NewAPI(opts)
	require.NoError(t, err)
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// selectedPair is pc's selected candidate pair once connected.
func selectedPair(t *testing.T, pc *webrtc.PeerConnection) *webrtc.ICECandidatePair {
	t.Helper()
	var pair *webrtc.ICECandidatePair
	waitFor(t, 10*time.Second, "a selected candidate pair", func() (bool, string) {
		for _, tr := range pc.GetTransceivers() {
			if r := tr.Receiver(); r != nil && r.Transport() != nil {
				pair, _ = r.Transport().ICETransport().GetSelectedCandidatePair()
			}
		}
		return pair != nil, "none"
	})
	return pair
}

// TestWHEPRelayOnlyThroughTURN: the WHEP answer's Link headers (RFC 9725
// 4.6) carry TURN URLs and credentials of the viewer's own; a player that
// may only use relays, over UDP or over TCP, plays the class through the
// node's embedded TURN server.
func TestWHEPRelayOnlyThroughTURN(t *testing.T) {
	t.Parallel()
	srv := startTURNServer(t)
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	tok := srv.token(t, room, auth.RoleStudent, "Player")

	// A first POST learns the ICE servers; the session is let go.
	probe := newWHEPViewer(t)
	offer, err := probe.pc.CreateOffer(nil)
	require.NoError(t, err)
	require.NoError(t, probe.pc.SetLocalDescription(offer))
	status, hdr, body := mediaHTTP(t, http.MethodPost, srv.base+"/whep/"+room, tok, offer.SDP)
	require.Equal(t, http.StatusCreated, status, body)
	status, _, _ = mediaHTTP(t, http.MethodDelete, srv.base+hdr.Get("Location"), tok, "")
	require.Equal(t, http.StatusOK, status)
	servers := client.ICEServersFromLinks(hdr)
	require.Len(t, servers, 2, hdr.Values("Link"))
	addrs := srv.app.TURN().Addrs()
	require.Equal(t, []string{"turn:127.0.0.1:" + strconv.Itoa(port(addrs.UDP.String())) + "?transport=udp"}, servers[0].URLs)
	require.Equal(t, []string{"turn:127.0.0.1:" + strconv.Itoa(port(addrs.TCP.String())) + "?transport=tcp"}, servers[1].URLs)
	checkUsername(t, srv.signer, servers[0].Username, tok)

	claims, err := srv.signer.Verify(tok)
	require.NoError(t, err)
	for _, c := range []struct {
		name    string
		servers []webrtc.ICEServer
		path    string
	}{
		{"turn over udp", servers[:1], "relay/udp"},
		{"turn over tcp", servers[1:], "relay/tcp"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := srv.app.TURN().Stats().Allocations
			v := newWHEPViewerOn(t, relayOnlyPC(t, c.servers, client.APIOptions{}))
			v.url = srv.base + negotiate(t, v.pc, srv.base+"/whep/"+room, tok)
			waitConnected(t, v.pc)
			v.waitMedia(t, 50)
			pair := selectedPair(t, v.pc)
			require.Equal(t, webrtc.ICECandidateTypeRelay, pair.Local.Typ, pair.String())
			require.Greater(t, srv.app.TURN().Stats().Allocations, before)
			waitFor(t, 10*time.Second, "the teacher's view of the player", func() (bool, string) {
				got := teacher.Connections()[claims.Participant]
				return got == c.path, got
			})
		})
	}
}

// TestStudentRelayOnlyThroughTURN: the welcome hands the page's (here the
// Go client's) peer connections the TURN servers; students that may only
// use relays, over UDP or TCP, receive the teacher's video, and the
// teacher is told each student's path, as /metrics counts them.
func TestStudentRelayOnlyThroughTURN(t *testing.T) {
	t.Parallel()
	srv := startTURNServer(t)
	room := newRoom()
	teacher := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Teacher"), client.Options{})
	publishClip(t, teacher, clipIVF, clipOgg)
	tok := srv.token(t, room, auth.RoleStudent, "Rita")
	relay := srv.dial(t, tok, client.Options{ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	w := relay.Welcome()
	require.Len(t, w.ICEServers, 1)
	require.Len(t, w.ICEServers[0].URLs, 2)
	require.Empty(t, w.Connections, "students are not told how others connect")
	checkUsername(t, srv.signer, w.ICEServers[0].Username, tok)
	tcpAPI, err := client.NewAPI(client.APIOptions{TCPOnly: true})
	require.NoError(t, err)
	students := map[string]*client.Client{
		"relay/udp": relay,
		// An active ICE-TCP candidate names port 9 (RFC 6544 4.5): the
		// node learns the client's address from the connection itself.
		"prflx/tcp": srv.dial(t, srv.token(t, room, auth.RoleStudent, "Tom"), client.Options{API: tcpAPI}),
		"host/udp":  srv.dial(t, srv.token(t, room, auth.RoleStudent, "Uma"), client.Options{}),
	}
	av := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
	subs := findSubs(t, students, teacher.ID(), av)
	for path, st := range students {
		waitFor(t, 30*time.Second, path+": a second of media", func() (bool, string) {
			v := subs[path].Video()
			return v.Packets >= 60, fmt.Sprintf("%d video packets", v.Packets)
		})
		waitFor(t, 10*time.Second, path+": the teacher's view", func() (bool, string) {
			got := teacher.Connections()[st.ID()]
			return got == path, got
		})
	}
	require.NotZero(t, srv.app.TURN().Stats().Active)
	metrics := getMetrics(t, srv)
	for _, want := range []string{
		`lectern_connections{transport="udp",type="relay"} 1`,
		`lectern_connections{transport="tcp",type="prflx"} 1`,
		`lectern_turn_allocations `,
	} {
		require.Contains(t, metrics, want)
	}
	// A teacher joining later gets the paths in its welcome.
	late := srv.dial(t, srv.token(t, room, auth.RoleTeacher, "Other teacher"), client.Options{NoSubscribe: true})
	require.Equal(t, "relay/udp", late.Welcome().Connections[relay.ID()])
	// The operator console's stream shows each student's path in its row.
	paths := consolePaths(t, srv)
	for path, st := range students {
		require.Equal(t, path, paths[st.ID()], "the console's row of %s", st.ID())
	}
}

// consolePaths reads one view of the operator console's stream (GET
// /api/operator/stream) and returns each connection's ICE path by
// participant.
func consolePaths(t *testing.T, srv *server) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.base+"/api/operator/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+operatorToken(t, srv.signer))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var view struct {
		Connections []struct {
			Participant string `json:"participant"`
			Path        string `json:"path"`
		} `json:"connections"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&view), "the stream's first line")
	out := map[string]string{}
	for _, c := range view.Connections {
		out[c.Participant] = c.Path
	}
	return out
}

// getMetrics scrapes /metrics.
func getMetrics(t *testing.T, srv *server) string {
	t.Helper()
	status, _, body := mediaHTTP(t, http.MethodGet, srv.base+"/metrics", "", "")
	require.Equal(t, http.StatusOK, status)
	return body
}

// checkUsername: a REST-API username, expiry:participant, that expires
// within the configured TTL and not after the token.
func checkUsername(t *testing.T, signer *auth.Signer, username, token string) {
	t.Helper()
	exp, pid, ok := strings.Cut(username, ":")
	require.True(t, ok, username)
	claims, err := signer.Verify(token)
	require.NoError(t, err)
	require.Equal(t, claims.Participant, pid)
	sec, err := strconv.ParseInt(exp, 10, 64)
	require.NoError(t, err)
	require.LessOrEqual(t, sec, claims.Expiry)
	require.LessOrEqual(t, sec, time.Now().Add(config.Default().TURNCredentialTTL).Unix())
	require.Greater(t, sec, time.Now().Unix())
}

func port(hostport string) int {
	i := strings.LastIndexByte(hostport, ':')
	n, _ := strconv.Atoi(hostport[i+1:])
	return n
}
