package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"lectern/client"
	"lectern/sfu"
)

// mediaHTTP sends a WHIP or WHEP request and returns status, header and body.
func mediaHTTP(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/sdp")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// loopbackPC is a pion peer connection confined to 127.0.0.1, closed when
// the test ends.
func loopbackPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	api, err := client.NewAPI(client.APIOptions{Logger: clientLogger(t)})
	require.NoError(t, err)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// negotiate posts pc's complete offer to url and applies the answer; it
// returns the session's Location.
func negotiate(t *testing.T, pc *webrtc.PeerConnection, url, token string) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	status, hdr, body := mediaHTTP(t, http.MethodPost, url, token, pc.LocalDescription().SDP)
	require.Equal(t, http.StatusCreated, status, body)
	require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}))
	return hdr.Get("Location")
}

func waitConnected(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	waitFor(t, 20*time.Second, "peer connection connected", func() (bool, string) {
		s := pc.ConnectionState()
		return s == webrtc.PeerConnectionStateConnected, s.String()
	})
}

// publishWHIP goes live in room over WHIP with the test clip (VP8 and
// Opus), as OBS would; it returns the session's URL.
func publishWHIP(t *testing.T, srv *server, room, token string) string {
	t.Helper()
	media, err := client.NewPublisher(client.PublisherOptions{IVF: clipIVF, Ogg: clipOgg})
	require.NoError(t, err)
	pc := loopbackPC(t)
	for _, tr := range media.Tracks() {
		_, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
	}
	loc := negotiate(t, pc, srv.base+"/whip/"+room, token)
	waitConnected(t, pc)
	media.Start()
	t.Cleanup(media.Stop)
	return srv.base + loc
}

// whepViewer is a pion WHEP client that counts what it receives.
type whepViewer struct {
	pc       *webrtc.PeerConnection
	url      string
	packets  [3]atomic.Int64 // by webrtc.RTPCodecType
	firstKey atomic.Int32    // 1: the first video packet was a keyframe, -1: it was not
	keyAt    atomic.Int64    // when the first keyframe began, in Unix nanoseconds
	upAt     atomic.Int64    // when the connection first came up, in Unix nanoseconds
	wg       sync.WaitGroup
}

func watchWHEP(t *testing.T, srv *server, room, token string) *whepViewer {
	t.Helper()
	v := newWHEPViewer(t)
	v.url = srv.base + negotiate(t, v.pc, srv.base+"/whep/"+room, token)
	waitConnected(t, v.pc)
	return v
}

// newWHEPViewer makes a viewer that receives audio and video and counts
// the packets of each, not yet negotiated.
func newWHEPViewer(t *testing.T) *whepViewer {
	t.Helper()
	return newWHEPViewerOn(t, loopbackPC(t))
}

// newWHEPViewerOn is newWHEPViewer on a peer connection of the caller's.
func newWHEPViewerOn(t *testing.T, pc *webrtc.PeerConnection) *whepViewer {
	t.Helper()
	v := &whepViewer{pc: pc}
	t.Cleanup(func() { _ = v.pc.Close(); v.wg.Wait() })
	v.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			v.upAt.CompareAndSwap(0, time.Now().UnixNano())
		}
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		_, err := v.pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		require.NoError(t, err)
	}
	v.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Add(1)
		defer v.wg.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo && v.packets[tr.Kind()].Load() == 0 {
				key := int32(-1)
				if sfu.IsKeyframe(tr.Codec().MimeType, p.Payload) {
					key = 1
				}
				v.firstKey.Store(key)
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo && v.keyAt.Load() == 0 && sfu.IsKeyframe(tr.Codec().MimeType, p.Payload) {
				v.keyAt.Store(time.Now().UnixNano())
			}
			v.packets[tr.Kind()].Add(1)
		}
	})
	return v
}

// waitMedia waits for n packets of video and of audio.
func (v *whepViewer) waitMedia(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, 30*time.Second, "WHEP media", func() (bool, string) {
		a, vid := v.packets[webrtc.RTPCodecTypeAudio].Load(), v.packets[webrtc.RTPCodecTypeVideo].Load()
		return a >= n && vid >= n, fmt.Sprintf("audio %d, video %d", a, vid)
	})
}
