package client

import (
	"net/http"
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
)

func TestICEServersFromLinks(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Add("Link", `<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="1700000000:p;1"; credential="a\"b,c"; credential-type="password"`)
	h.Add("Link", `<https://example.org/next>; rel="next", <stun:stun.example.org>; rel=ice-server`)
	h.Add("Link", `garbage; rel="ice-server"`)
	got := ICEServersFromLinks(h)
	require.Equal(t, []webrtc.ICEServer{
		{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1700000000:p;1", Credential: `a"b,c`,
			CredentialType: webrtc.ICECredentialTypePassword},
		{URLs: []string{"stun:stun.example.org"}},
	}, got)
}
