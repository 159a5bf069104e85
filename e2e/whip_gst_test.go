package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// gstPackages are the Debian packages the GStreamer interop test needs.
const gstPackages = "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad " +
	"gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice python3-gi python3-gst-1.0 gir1.2-gst-plugins-bad-1.0"

// gstWHIPClient is a small WHIP client on GStreamer's webrtcbin (an
// independent WebRTC stack: libnice for ICE, its own DTLS-SRTP), since
// Debian ships no whipsink: VP8 from videotestsrc and Opus from
// audiotestsrc, sendonly, one complete offer POSTed with the bearer token,
// the answer applied, and after the given seconds a DELETE of the session.
const gstWHIPClient = `
import sys, threading, urllib.request
import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
gi.require_version('GstSdp', '1.0')
from gi.repository import Gst, GstWebRTC, GstSdp, GLib

url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
Gst.init(None)
pipe = Gst.parse_launch(
    'webrtcbin name=w bundle-policy=max-bundle '
    'videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! '
    'vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 ! '
    'application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w. '
    'audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! '
    'application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w.')
w = pipe.get_by_name('w')
loop = GLib.MainLoop()
state = {'rc': 1}

# webrtcbin calls on_state from its own threads: print writes each word
# apart, so one line is written whole, under a lock.
out_lock = threading.Lock()

def out(*a):
    with out_lock:
        sys.stdout.write(' '.join(str(x) for x in a) + '\n')
        sys.stdout.flush()

def post():
    offer = w.get_property('local-description').sdp.as_text()
    req = urllib.request.Request(url, data=offer.encode(), method='POST',
        headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/sdp'})
    try:
        resp = urllib.request.urlopen(req, timeout=10)
    except Exception as e:
        out('ERROR POST', e)
        loop.quit()
        return False
    state['location'] = resp.headers['Location']
    _, msg = GstSdp.SDPMessage.new_from_text(resp.read().decode())
    answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
    w.emit('set-remote-description', answer, Gst.Promise.new())
    out('POSTED', resp.status, state['location'])
    return False

def on_gathering(*_):
    if w.get_property('ice-gathering-state') == GstWebRTC.WebRTCICEGatheringState.COMPLETE and 'posted' not in state:
        state['posted'] = True
        GLib.idle_add(post)

def on_offer(promise, _):
    promise.wait()
    reply = promise.get_reply()  # keep it: the offer lives inside it
    offer = reply.get_value('offer')
    w.emit('set-local-description', offer, Gst.Promise.new())

def on_negotiation_needed(*_):
    w.emit('create-offer', None, Gst.Promise.new_with_change_func(on_offer, None))

def on_state(*_):
    st = w.get_property('connection-state')
    out('STATE', st.value_nick)
    if st == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and 'timer' not in state:
        state['timer'] = GLib.timeout_add_seconds(seconds, stop)
    if st == GstWebRTC.WebRTCPeerConnectionState.FAILED:
        loop.quit()

def stop():
    req = urllib.request.Request(state['base'] + state['location'], method='DELETE',
        headers={'Authorization': 'Bearer ' + token})
    out('DELETED', urllib.request.urlopen(req, timeout=10).status)
    state['rc'] = 0
    loop.quit()
    return False

def on_bus(_, msg):
    if msg.type == Gst.MessageType.ERROR:
        out('ERROR', msg.parse_error())
        loop.quit()

state['base'] = url.split('/whip/')[0]
for i in range(2):  # video, audio
    w.emit('get-transceiver', i).set_property('direction', GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
w.connect('on-negotiation-needed', on_negotiation_needed)
w.connect('notify::ice-gathering-state', on_gathering)
w.connect('notify::connection-state', on_state)
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect('message', on_bus)
pipe.set_state(Gst.State.PLAYING)
GLib.timeout_add_seconds(30, lambda: (out('ERROR timeout'), loop.quit()))
loop.run()
pipe.set_state(Gst.State.NULL)
sys.exit(state['rc'])
`

// TestWHIPGStreamerInterop: GStreamer's webrtcbin publishes over WHIP; a
// WHEP viewer of the class receives its VP8 video (starting on a
// keyframe) and Opus audio; the client's DELETE ends the session.
func TestWHIPGStreamerInterop(t *testing.T) {
	t.Parallel()
	python := findGStreamerPython(t)
	srv := startServer(t, "tokens")
	room := newRoom()
	viewer := watchWHEP(t, srv, room, srv.token(t, room, auth.RoleStudent, "Player"))

	script := filepath.Join(t.TempDir(), "whip_client.py")
	require.NoError(t, os.WriteFile(script, []byte(gstWHIPClient), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, srv.base+"/whip/"+room,
		srv.token(t, room, auth.RoleTeacher, "GStreamer"), "4")
	cmd.Env = append(os.Environ(), "GST_DEBUG=1")
	outc := make(chan []byte, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		if err != nil {
			b = append(b, []byte("\nexit: "+err.Error())...)
		}
		outc <- b
	}()
	var out string
	t.Cleanup(func() {
		if out == "" {
			cancel()
			out = string(<-outc)
		}
		t.Logf("GStreamer WHIP client:\n%s", out)
	})
	viewer.waitMedia(t, 50)
	require.Equal(t, int32(1), viewer.firstKey.Load(), "the viewer starts on a keyframe")
	out = string(<-outc)
	require.Contains(t, out, "POSTED 201")
	require.Contains(t, out, "STATE connected")
	require.Contains(t, out, "DELETED 200")
	require.NotContains(t, out, "exit:")
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
