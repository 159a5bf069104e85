package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// gstPackages are the Debian packages the GStreamer interop test needs.
const gstPackages = "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad " +
	"gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice python3-gi python3-gst-1.0 gir1.2-gst-plugins-bad-1.0"

// TestWHIPGStreamerInterop: GStreamer's webrtcbin publishes over WHIP; a
// WHEP viewer of the class receives its VP8 video (starting on a
// keyframe) and Opus audio; the client's DELETE ends the session.
func TestWHIPGStreamerInterop(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "tokens")
	room := newRoom()
	viewer := watchWHEP(t, srv, room, srv.token(t, room, auth.RoleStudent, "Player"))
	pub := startGST(t, "gst_whip.py", srv.base+"/whip/"+room, srv.token(t, room, auth.RoleTeacher, "GStreamer"), "4", "vp8", "30")
	viewer.waitMedia(t, 50)
	require.Equal(t, int32(1), viewer.firstKey.Load(), "the viewer starts on a keyframe")
	pub.wait(t, 60*time.Second)
	out := pub.output()
	require.Contains(t, out, "POSTED 201")
	require.Contains(t, out, "STATE connected")
	require.Contains(t, out, "DELETED 200")
}

// findGStreamerPython fails, never skips, when the GStreamer stack is not
// installed: a missing tool is a broken setup.
func findGStreamerPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	check := `import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
from gi.repository import Gst
Gst.init(None)
for e in ('webrtcbin', 'nicesrc', 'vp8enc', 'vp9enc', 'x264enc', 'opusenc', 'rtpvp8pay', 'rtpvp9pay',
          'rtph264pay', 'rtpopuspay', 'decodebin', 'avdec_h264', 'vp8dec', 'vp9dec'):
    assert Gst.ElementFactory.find(e), e
`
	out, err := exec.Command(python, "-c", check).CombinedOutput()
	if err != nil {
		t.Fatalf("GStreamer with webrtcbin is needed (Debian: apt-get install %s): %v\n%s",
			gstPackages, err, strings.TrimSpace(string(out)))
	}
	return python
}
