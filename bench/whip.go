package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// WHIP (RFC 9725) and WHEP clients. Both sides are the same exchange: the
// client POSTs a complete SDP offer (no trickle: on one machine gathering
// takes a millisecond) with a bearer token, the server answers 201 Created
// with the SDP answer and a Location naming the session, and a DELETE of
// that Location ends it (RFC 9725 sections 4.2 and 4.3).

// maxSDP bounds an answer read from the server.
const maxSDP = 256 << 10

// session is one WHIP or WHEP resource on the server.
type session struct {
	hc       *http.Client
	location string
	token    string
}

// newHTTPClient returns the client every session of a run shares. It
// ignores proxy variables: the tool measures the server, not a proxy.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     10 * time.Second,
		},
	}
}

// negotiate offers pc's transceivers to endpoint and applies the answer.
func negotiate(ctx context.Context, hc *http.Client, endpoint, token string, pc *webrtc.PeerConnection) (*session, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("bench: offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("bench: offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return nil, fmt.Errorf("bench: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSDP))
	if err != nil {
		return nil, fmt.Errorf("bench: POST %s: read answer: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("%w: POST %s: %s: %s", ErrStatus, endpoint, resp.Status, shorten(string(body), 200))
	}
	// Location may be relative; resp.Location resolves it against the request.
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("%w: POST %s: 201 without a usable Location: %w", ErrStatus, endpoint, err)
	}
	answer := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}
	if err := pc.SetRemoteDescription(answer); err != nil {
		return nil, fmt.Errorf("bench: answer of %s: %w", endpoint, err)
	}
	return &session{hc: hc, location: loc.String(), token: token}, nil
}

// end deletes the session's resource. A 404 means the server has already
// ended it, which is not an error for a client that is leaving.
func (s *session) end(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.location, nil)
	if err != nil {
		return fmt.Errorf("bench: request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("bench: DELETE %s: %w", s.location, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxSDP))
	_ = resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusAccepted, http.StatusNotFound:
		return nil
	}
	return fmt.Errorf("%w: DELETE %s: %s", ErrStatus, s.location, resp.Status)
}

// endpointURL is base + "/" + kind + "/" + room.
func endpointURL(base, kind, room string) string {
	return strings.TrimRight(base, "/") + "/" + kind + "/" + url.PathEscape(room)
}

// isLoopback reports whether base names this machine by address or as localhost.
func isLoopback(base string) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// newAPI builds the pion API every peer connection of a run shares: VP8
// and Opus with NACK (RFC 4585 section 6.2.1) and RTCP reports (RFC 3550
// section 6.4), like a browser; no mDNS. Against a server on this machine
// it gathers loopback candidates only, so all traffic stays on 127.0.0.1.
func newAPI(loopbackOnly bool, lf loggerFactory) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return nil, fmt.Errorf("bench: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("bench: rtcp reports: %w", err)
	}
	s := webrtc.SettingEngine{LoggerFactory: lf}
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopbackOnly {
		s.SetIncludeLoopbackCandidate(true)
		s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(s)), nil
}

// Payload types as browsers use them.
const (
	payloadTypeVP8  = 96
	payloadTypeOpus = 111
)

func registerCodecs(m *webrtc.MediaEngine) error {
	video := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        payloadTypeVP8,
	}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("bench: register vp8: %w", err)
	}
	audio := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: payloadTypeOpus,
	}
	if err := m.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("bench: register opus: %w", err)
	}
	return nil
}

// shorten cuts s to n bytes for an error message.
func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
