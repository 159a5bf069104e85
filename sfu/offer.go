package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// offerKinds reads a client's offer: the kinds of its audio and video
// sections that go in the direction asked for (the client sends, or the
// client receives), and among them the kinds with at least one codec the
// engine forwards. Only the first section of each kind counts. It fails
// with ErrBadSDP when the offer is malformed or has no such section, and
// with ErrUnsupportedCodec when none of them offers a codec the engine
// forwards.
func (e *Engine) offerKinds(offer webrtc.SessionDescription, clientSends bool) (supported []webrtc.RTPCodecType, offered map[webrtc.RTPCodecType]bool, err error) {
	if offer.Type != webrtc.SDPTypeOffer {
		return nil, nil, fmt.Errorf("%w: expected an offer, got %s", ErrBadSDP, offer.Type)
	}
	parsed, err := offer.Unmarshal()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	want := map[string]bool{"sendrecv": true, "recvonly": true}
	if clientSends {
		want = map[string]bool{"sendrecv": true, "sendonly": true}
	}
	offered = map[webrtc.RTPCodecType]bool{}
	for _, m := range parsed.MediaDescriptions {
		kind := webrtc.NewRTPCodecType(m.MediaName.Media)
		if kind == 0 || rejected(m) || offered[kind] || !want[direction(m)] {
			continue
		}
		offered[kind] = true
		if len(e.supportedIn(m, kind)) > 0 {
			supported = append(supported, kind)
		}
	}
	if len(offered) == 0 {
		return nil, nil, fmt.Errorf("%w: the offer has no audio or video section in the right direction", ErrBadSDP)
	}
	if len(supported) == 0 {
		return nil, nil, fmt.Errorf("%w: the offer has none of %s", ErrUnsupportedCodec, strings.Join(e.CodecNames(), ", "))
	}
	return supported, offered, nil
}

// CheckPublishOffer checks a publisher's offer before any peer connection
// is made: ErrBadSDP when it is malformed or sends nothing,
// ErrUnsupportedCodec when it sends no codec the engine forwards.
func (e *Engine) CheckPublishOffer(offer webrtc.SessionDescription) error {
	_, _, err := e.offerKinds(offer, true)
	return err
}

// supportedIn lists the codecs of a media section that the engine
// forwards, with the same profile rules as forwarding (matchCodec).
func (e *Engine) supportedIn(m *sdp.MediaDescription, kind webrtc.RTPCodecType) []webrtc.RTPCodecParameters {
	engine := e.audio
	if kind == webrtc.RTPCodecTypeVideo {
		engine = e.video
	}
	var out []webrtc.RTPCodecParameters
	for _, c := range sectionCodecs(m) {
		if _, ok := matchCodec(c, engine); ok {
			out = append(out, c)
		}
	}
	return out
}

// sectionCodecs reads a media section's rtpmap and fmtp attributes
// (RFC 8866 6.6, 6.15).
func sectionCodecs(m *sdp.MediaDescription) []webrtc.RTPCodecParameters {
	fmtp := map[string]string{}
	for _, a := range m.Attributes {
		if a.Key == "fmtp" {
			pt, params, _ := strings.Cut(a.Value, " ")
			fmtp[pt] = params
		}
	}
	var out []webrtc.RTPCodecParameters
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, _ := strings.Cut(a.Value, " ")
		parts := strings.Split(enc, "/")
		if len(parts) < 2 {
			continue
		}
		var rate uint32
		if _, err := fmt.Sscanf(parts[1], "%d", &rate); err != nil {
			continue
		}
		out = append(out, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: m.MediaName.Media + "/" + parts[0], ClockRate: rate, SDPFmtpLine: fmtp[pt],
		}})
	}
	return out
}

// CodecNames lists the codecs the engine forwards, e.g. "video/VP8".
func (e *Engine) CodecNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range append(append([]webrtc.RTPCodecParameters(nil), e.video...), e.audio...) {
		if !seen[c.MimeType] {
			seen[c.MimeType] = true
			out = append(out, c.MimeType)
		}
	}
	return out
}

// rejected: a media section with port 0 that is not bundle-only. RFC 8843
// section 6 (and JSEP, RFC 8829 5.2.1, with the max-bundle policy) gives
// bundle-only sections port 0 too, and they carry media like any other.
func rejected(m *sdp.MediaDescription) bool {
	if m.MediaName.Port.Value != 0 {
		return false
	}
	_, bundleOnly := m.Attribute("bundle-only")
	return !bundleOnly
}
