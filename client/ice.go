package client

import (
	"net/http"
	"strings"

	"github.com/pion/webrtc/v4"
)

// ICEServer is a STUN or TURN server from the welcome, with the
// participant's own credentials (docs/protocol.md).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// rtcConfig is the configuration of the client's next peer connection:
// the ICE servers of the last welcome, and Options.ICETransportPolicy.
func (c *Client) rtcConfig() webrtc.Configuration {
	w := c.Welcome()
	cfg := webrtc.Configuration{ICETransportPolicy: c.opts.ICETransportPolicy}
	for _, s := range w.ICEServers {
		srv := webrtc.ICEServer{URLs: s.URLs, Username: s.Username}
		if s.Credential != "" {
			srv.Credential, srv.CredentialType = s.Credential, webrtc.ICECredentialTypePassword
		}
		cfg.ICEServers = append(cfg.ICEServers, srv)
	}
	return cfg
}

// ICEServersFromLinks reads the ICE servers a WHIP or WHEP endpoint
// announces in Link headers (RFC 9725 4.6): each rel="ice-server" link is
// one server URL, with username and credential parameters for TURN.
// Links of other relations and malformed ones are skipped.
func ICEServersFromLinks(h http.Header) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, line := range h.Values("Link") {
		for _, link := range splitOutsideQuotes(line, ',') {
			if srv, ok := parseICELink(link); ok {
				out = append(out, srv)
			}
		}
	}
	return out
}

// parseICELink parses `<url>; rel="ice-server"; username="u"; ...`.
func parseICELink(link string) (webrtc.ICEServer, bool) {
	var srv webrtc.ICEServer
	parts := splitOutsideQuotes(link, ';')
	if len(parts) == 0 {
		return srv, false
	}
	u := strings.TrimSpace(parts[0])
	if len(u) < 3 || u[0] != '<' || u[len(u)-1] != '>' {
		return srv, false
	}
	srv.URLs = []string{u[1 : len(u)-1]}
	rel := false
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		v = unquote(strings.TrimSpace(v))
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "rel":
			rel = v == "ice-server"
		case "username":
			srv.Username = v
		case "credential":
			srv.Credential, srv.CredentialType = v, webrtc.ICECredentialTypePassword
		}
	}
	return srv, rel
}

// splitOutsideQuotes splits s at sep where it is not inside a quoted
// string (RFC 9110 5.6.4).
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote undoes an RFC 9110 quoted-string; a token is returned as is.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		if s[i] == '\\' && i+1 < len(s)-1 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
