package signaling

import (
	"net"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/sfu"
)

// ICESource mints the ICE servers one participant is handed: the embedded
// TURN server's URLs with credentials of that participant, valid at most
// until until. host is the name the client reached this node by.
type ICESource interface {
	ICEServers(participant string, until time.Time, host string) []webrtc.ICEServer
}

// iceServerInfo is an ICE server in the classroom protocol, shaped as the
// page's RTCIceServer (W3C webrtc-pc 4.2.4).
type iceServerInfo struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// iceServers are the configured servers and, with TURN, the participant's
// own credentials, bounded by its token's expiry.
func (s *Server) iceServers(pid sfu.ParticipantID, claims auth.Claims, host string) []webrtc.ICEServer {
	out := append([]webrtc.ICEServer(nil), s.opts.ICEServers...)
	if s.opts.TURN != nil {
		var until time.Time
		if claims.Expiry > 0 {
			until = time.Unix(claims.Expiry, 0)
		}
		out = append(out, s.opts.TURN.ICEServers(string(pid), until, host)...)
	}
	return out
}

// iceInfos converts servers for the welcome message.
func iceInfos(servers []webrtc.ICEServer) []iceServerInfo {
	out := make([]iceServerInfo, 0, len(servers))
	for _, srv := range servers {
		cred, _ := srv.Credential.(string)
		out = append(out, iceServerInfo{URLs: srv.URLs, Username: srv.Username, Credential: cred})
	}
	return out
}

// requestHost is the host part of the request's Host header: the name
// the client used, which TURN URLs repeat unless one is configured.
func requestHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}
