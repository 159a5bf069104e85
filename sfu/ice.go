package sfu

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// ICE restarts for peer connections where the client offered (WHIP
// publishers and WHEP viewers). RFC 9725 4.3.3: the client sends only its
// new ICE credentials (and candidates), never a new offer, and the rest of
// the negotiated session still applies. So the server re-applies the
// client's previous offer with the new credentials, which restarts ICE in
// pion (RFC 8839 4.4.1.1.1), and answers with its own new credentials.

// RestartICE restarts the publisher's ICE session with the client's new
// credentials and returns the server's new answer.
func (p *Publisher) RestartICE(ufrag, pwd string) (webrtc.SessionDescription, error) {
	return restartICE(p.pc, p.gate, ufrag, pwd)
}

// RestartICE restarts the viewer's ICE session with the client's new
// credentials and returns the server's new answer.
func (v *Viewer) RestartICE(ufrag, pwd string) (webrtc.SessionDescription, error) {
	return restartICE(v.pc, v.gate, ufrag, pwd)
}

// RemoteICE returns the client's current ICE credentials.
func (p *Publisher) RemoteICE() (ufrag, pwd string) { return remoteICE(p.pc) }

// RemoteICE returns the client's current ICE credentials.
func (v *Viewer) RemoteICE() (ufrag, pwd string) { return remoteICE(v.pc) }

func remoteICE(pc *webrtc.PeerConnection) (ufrag, pwd string) {
	rd := pc.RemoteDescription()
	if rd == nil {
		return "", ""
	}
	return ICECredentials(rd.SDP)
}

// ICECredentials returns the first ice-ufrag and ice-pwd of an SDP (RFC
// 8839 5.4; with BUNDLE every section carries the same ones).
func ICECredentials(sdp string) (ufrag, pwd string) {
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, "a=ice-ufrag:"); ok && ufrag == "" {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(line, "a=ice-pwd:"); ok && pwd == "" {
			pwd = v
		}
	}
	return ufrag, pwd
}

func restartICE(pc *webrtc.PeerConnection, gate *candidateGate, ufrag, pwd string) (webrtc.SessionDescription, error) {
	var none webrtc.SessionDescription
	if ufrag == "" || pwd == "" {
		return none, fmt.Errorf("%w: an ICE restart needs ice-ufrag and ice-pwd", ErrBadSDP)
	}
	rd := pc.RemoteDescription()
	if rd == nil {
		return none, ErrClosed
	}
	offer := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: withICECredentials(rd.SDP, ufrag, pwd)}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return none, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	gate.reset() // the old session's candidates are gone

	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return none, fmt.Errorf("sfu: create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return none, fmt.Errorf("sfu: set local description: %w", err)
	}
	if err := waitGathering(gathered); err != nil {
		return none, err
	}
	return *pc.LocalDescription(), nil
}

// withICECredentials replaces an SDP's ICE credentials and drops its
// candidates, which belong to the previous ICE session; the client
// trickles the new ones.
func withICECredentials(sdp, ufrag, pwd string) string {
	lines := strings.Split(strings.TrimRight(sdp, "\r\n"), "\n")
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + pwd
		case strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\r\n") + "\r\n"
}
