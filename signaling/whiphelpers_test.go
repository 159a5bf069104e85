package signaling

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/auth"
	"lectern/sfu"
)

// httpResult is one WHIP or WHEP HTTP exchange.
type httpResult struct {
	status int
	header http.Header
	body   string
}

// mediaReq sends a WHIP or WHEP request; token "" sends no Authorization.
func (e *testEnv) mediaReq(method, path, token, ctype, body string, hdr ...string) httpResult {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, resp.Body)
	require.NoError(e.t, err)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: buf.String()}
}

// whipOpts describe a test WHIP publisher.
type whipOpts struct {
	codec   webrtc.RTPCodecCapability // video codec; VP8 when empty
	noAudio bool
	trickle bool        // POST an offer without candidates, then PATCH them
	api     *webrtc.API // clientAPI when nil
}

// whipPub is a pion WHIP client: a sendonly peer connection posted to
// /whip/{room}.
type whipPub struct {
	t     *testing.T
	env   *testEnv
	token string
	pc    *webrtc.PeerConnection
	video *webrtc.TrackLocalStaticRTP
	audio *webrtc.TrackLocalStaticRTP
	loc   string
	etag  string
	cands chan webrtc.ICECandidateInit
	stop  chan struct{}
	wg    sync.WaitGroup
}

func videoCodec(c webrtc.RTPCodecCapability) webrtc.RTPCodecCapability {
	if c.MimeType == "" {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	return c
}

// newWHIP builds the client and posts its offer; the caller checks res.
func (e *testEnv) newWHIP(t *testing.T, room, token string, o whipOpts) (*whipPub, httpResult) {
	t.Helper()
	if o.api == nil {
		o.api = clientAPI()
	}
	pc, err := o.api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	p := &whipPub{t: t, env: e, token: token, pc: pc, stop: make(chan struct{}), cands: make(chan webrtc.ICECandidateInit, 16)}
	t.Cleanup(p.close)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.cands <- c.ToJSON()
		}
	})
	p.video, err = webrtc.NewTrackLocalStaticRTP(videoCodec(o.codec), "video", "obs")
	require.NoError(t, err)
	tracks := []webrtc.TrackLocal{p.video}
	if !o.noAudio {
		p.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "obs")
		require.NoError(t, err)
		tracks = append(tracks, p.audio)
	}
	for _, tr := range tracks {
		_, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		require.NoError(t, err)
	}
	sdp := offerSDP(t, pc, o.trickle)
	res := e.mediaReq(http.MethodPost, "/whip/"+room, token, "application/sdp", sdp)
	if res.status == http.StatusCreated {
		p.loc, p.etag = res.header.Get("Location"), res.header.Get("ETag")
		require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}))
	}
	return p, res
}

// startWHIP posts and requires a 201; media flows once started with send.
func (e *testEnv) startWHIP(t *testing.T, room, token string, o whipOpts) *whipPub {
	t.Helper()
	p, res := e.newWHIP(t, room, token, o)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	if o.trickle {
		p.trickle()
	}
	waitPCConnected(t, p.pc)
	return p
}

// offerSDP makes the local offer: complete after gathering, or, for
// trickle, as created (no candidates yet).
func offerSDP(t *testing.T, pc *webrtc.PeerConnection, trickle bool) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	if trickle {
		require.NoError(t, pc.SetLocalDescription(offer))
		require.NotContains(t, offer.SDP, "a=candidate:")
		return offer.SDP
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	return pc.LocalDescription().SDP
}

// trickle PATCHes the candidates gathered so far (RFC 8840 fragments).
func (p *whipPub) trickle() {
	p.t.Helper()
	patchCandidates(p.t, p.env, p.loc, p.token, p.etag, p.pc, p.cands)
}

func patchCandidates(t *testing.T, e *testEnv, loc, token, etag string, pc *webrtc.PeerConnection, cands chan webrtc.ICECandidateInit) {
	t.Helper()
	<-webrtc.GatheringCompletePromise(pc)
	ufrag, pwd := iceCreds(pc.LocalDescription().SDP)
	sent := 0
	for len(cands) > 0 {
		c := <-cands
		frag := fmt.Sprintf("a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%s\r\na=%s\r\n",
			ufrag, pwd, *c.SDPMid, c.Candidate)
		res := e.mediaReq(http.MethodPatch, loc, token, "application/trickle-ice-sdpfrag", frag, "If-Match", etag)
		require.Equal(t, http.StatusNoContent, res.status, res.body)
		sent++
	}
	require.Positive(t, sent, "no candidate was trickled")
}

func iceCreds(sdp string) (ufrag, pwd string) {
	for _, l := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

// send streams VP8 keyframes (or the given payloads) and Opus until close.
func (p *whipPub) send() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := uint32(0); ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			vp8 := []byte{0x10, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, byte(i)}
			_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(i), Timestamp: i * 1800}, Payload: vp8})
			if p.audio != nil {
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: i * 960}, Payload: []byte{0xfc, byte(i)}})
			}
		}
	}()
}

func (p *whipPub) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
	_ = p.pc.Close()
}

// delete ends the session.
func (p *whipPub) delete() {
	p.t.Helper()
	res := p.env.mediaReq(http.MethodDelete, p.loc, p.token, "", "")
	require.Equal(p.t, http.StatusOK, res.status, res.body)
}

func waitPCConnected(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	require.Eventually(t, func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	}, 10*time.Second, 10*time.Millisecond, "peer connection did not connect")
}

// whepView is a pion WHEP client: a recvonly peer connection posted to
// /whep/{room}; it keeps every packet it receives.
type whepView struct {
	t      *testing.T
	env    *testEnv
	token  string
	pc     *webrtc.PeerConnection
	loc    string
	etag   string
	cands  chan webrtc.ICECandidateInit
	mu     sync.Mutex
	pkts   map[webrtc.RTPCodecType][]rtp.Packet
	wg     sync.WaitGroup
	closed bool
}

// newWHEP posts a receive-only offer from api (clientAPI when nil).
func (e *testEnv) newWHEP(t *testing.T, path, token string, api *webrtc.API, trickle bool) (*whepView, httpResult) {
	t.Helper()
	if api == nil {
		api = clientAPI()
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(t, err)
	v := &whepView{t: t, env: e, token: token, pc: pc, pkts: map[webrtc.RTPCodecType][]rtp.Packet{},
		cands: make(chan webrtc.ICECandidateInit, 16)}
	t.Cleanup(v.close)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			v.cands <- c.ToJSON()
		}
	})
	pc.OnTrack(v.read)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		_, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		require.NoError(t, err)
	}
	res := e.mediaReq(http.MethodPost, path, token, "application/sdp", offerSDP(t, pc, trickle))
	if res.status == http.StatusCreated {
		v.loc, v.etag = res.header.Get("Location"), res.header.Get("ETag")
		require.NoError(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.body}))
	}
	return v, res
}

func (e *testEnv) startWHEP(t *testing.T, path, token string) *whepView {
	t.Helper()
	v, res := e.newWHEP(t, path, token, nil, false)
	require.Equal(t, http.StatusCreated, res.status, res.body)
	waitPCConnected(t, v.pc)
	return v
}

func (v *whepView) read(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.wg.Add(1)
	v.mu.Unlock()
	defer v.wg.Done()
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.pkts[tr.Kind()] = append(v.pkts[tr.Kind()], *pkt)
		v.mu.Unlock()
	}
}

func (v *whepView) packets(kind webrtc.RTPCodecType) []rtp.Packet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rtp.Packet(nil), v.pkts[kind]...)
}

// waitMedia waits until at least n more packets of each kind arrived.
func (v *whepView) waitMedia(n int, kinds ...webrtc.RTPCodecType) {
	v.t.Helper()
	base := map[webrtc.RTPCodecType]int{}
	for _, k := range kinds {
		base[k] = len(v.packets(k))
	}
	require.Eventually(v.t, func() bool {
		for _, k := range kinds {
			if len(v.packets(k)) < base[k]+n {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "WHEP viewer waiting for media")
}

func (v *whepView) close() {
	_ = v.pc.Close()
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.wg.Wait()
}

func (v *whepView) delete() {
	v.t.Helper()
	res := v.env.mediaReq(http.MethodDelete, v.loc, v.token, "", "")
	require.Equal(v.t, http.StatusOK, res.status, res.body)
}

var (
	kindVideo = webrtc.RTPCodecTypeVideo
	kindAudio = webrtc.RTPCodecTypeAudio
)

// newEnvWith is newEnv with an engine and options changed by edit.
func newEnvWith(t *testing.T, edit func(*Options)) *testEnv {
	t.Helper()
	signer, err := auth.NewSigner([]byte(testSecret))
	require.NoError(t, err)
	e, err := sfu.NewEngine(sfu.Config{TCPPort: -1, PublicIP: "127.0.0.1", Logger: zerolog.Nop()})
	require.NoError(t, err)
	opts := Options{Engine: e, Signer: signer, AuthMode: AuthOpen, Logger: zerolog.Nop(), Registry: prometheus.NewRegistry()}
	edit(&opts)
	srv, err := New(opts)
	require.NoError(t, err)
	env := newEnvFor(t, srv, signer)
	env.engine = e
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		env.http.Close()
		_ = e.Close()
	})
	return env
}
