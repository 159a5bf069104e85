package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"lectern/auth"
)

// TestInteropMatrix: GStreamer's webrtcbin, an independent WebRTC stack,
// publishes over WHIP in each way a school's encoder does: H.264 offered
// with no format parameters at all, H.264 High with them (as OBS sends),
// VP8 and VP9. Each class is watched at once by the class page in
// Chromium, by Chromium through WHEP and by GStreamer through WHEP, each
// decoding frames of the publisher's 320x240 picture, and recorded: ffprobe
// reads the recording's codec and picture size.
func TestInteropMatrix(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	b := newBrowser(t, chromium)
	for _, tc := range []struct{ codec, mime, gst, probe string }{
		{"h264", "video/H264", "H264", "h264"},
		{"h264-high", "video/H264", "H264", "h264"},
		{"vp8", "video/VP8", "VP8", "vp8"},
		{"vp9", "video/VP9", "VP9", "vp9"},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			room := newRoom()
			teacher := srv.token(t, room, auth.RoleTeacher, "Encoder")
			pub := startGST(t, "gst_whip.py", srv.base+"/whip/"+room, teacher, "30", tc.codec, "30")
			pub.line(t, "STATE connected", 30*time.Second)
			var rec struct {
				ID string `json:"id"`
			}
			apiCall(t, http.MethodPost, srv.base+"/api/rooms/"+room+"/recording", teacher, http.StatusCreated, &rec)

			player := startGST(t, "gst_whep.py", srv.base+"/whep/"+room, srv.token(t, room, auth.RoleStudent, "GStreamer"), "3")
			page := b.open(t, tc.codec+"-page", srv.base+"/room/"+room+"#token="+srv.token(t, room, auth.RoleStudent, "Ada"))
			whep := openChromiumWHEP(t, b, tc.codec+"-whep", srv, room)
			page.waitVideoPlaying(t)
			whep.waitDecoding(t, tc.mime)
			decoded := strings.Fields(player.line(t, "DECODED", 60*time.Second))
			frames, _ := strconv.Atoi(decoded[1])
			require.Greater(t, frames, 30, "GStreamer decoded frames: %v", decoded)
			require.Equal(t, []string{"320x240", tc.gst}, decoded[2:], "GStreamer's picture and codec")

			var stopped struct {
				Recordings []recEntry `json:"recordings"`
			}
			apiCall(t, http.MethodDelete, srv.base+"/api/rooms/"+room+"/recording", teacher, http.StatusOK, &stopped)
			require.Len(t, stopped.Recordings, 1)
			file := download(t, srv.base, stopped.Recordings[0].ID, operatorToken(t, srv.signer))
			codec, w, h := ffprobeVideo(t, file)
			require.Equal(t, tc.probe, codec)
			require.Equal(t, [2]int{320, 240}, [2]int{w, h}, "the recording's picture size")
			// Loopback drops a datagram now and then on a busy machine, and
			// what the recorder keeps of a damaged frame may still be refused
			// by the decoder: a few complaints are allowed, a file that does
			// not decode is not.
			complaints := ffmpegDecode(t, file)
			require.LessOrEqual(t, strings.Count(complaints, "\n"), 3, "the recording decodes: %s", complaints)
			frames = ffprobeFrames(t, file)
			t.Logf("recording: %s %dx%d, %d video frames, %d decoder complaints", codec, w, h, frames, strings.Count(complaints, "\n"))
			require.Positive(t, frames, "video frames in the recording")
		})
	}
}

// TestBrowserH264ToGStreamer: a teacher's class page asked for H.264
// (?codec=h264) goes live from Chromium; GStreamer watches through WHEP
// and decodes H.264 frames.
func TestBrowserH264ToGStreamer(t *testing.T) {
	t.Parallel()
	chromium := findChromium(t)
	srv := startServer(t, "tokens")
	room := newRoom()
	b := newBrowser(t, chromium)
	teacher := b.open(t, "teacher", srv.base+"/room/"+room+"?codec=h264#token="+srv.token(t, room, auth.RoleTeacher, "Ms Teacher"))
	teacher.goLive(t)
	player := startGST(t, "gst_whep.py", srv.base+"/whep/"+room, srv.token(t, room, auth.RoleStudent, "GStreamer"), "3")
	decoded := strings.Fields(player.line(t, "DECODED", 60*time.Second))
	frames, _ := strconv.Atoi(decoded[1])
	require.Greater(t, frames, 30, "GStreamer decoded frames: %v", decoded)
	require.Equal(t, "H264", decoded[3], "the class page sent H.264")
	require.NotEqual(t, "0x0", decoded[2])
}

// chromiumWHEPScript plays a class through WHEP in a page of the server's
// origin: a receive-only offer, complete with candidates, POSTed with the
// bearer token (docs/whip-whep.md), the answer applied, the media shown
// in a <video>.
const chromiumWHEPScript = `(async (url, token) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const media = new MediaStream();
  pc.ontrack = (e) => { media.addTrack(e.track); video.srcObject = media; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  });
  const res = await fetch(url, { method: 'POST', body: pc.localDescription.sdp,
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token } });
  const sdp = await res.text();
  if (res.status !== 201) return 'POST ' + res.status + ': ' + sdp;
  await pc.setRemoteDescription({ type: 'answer', sdp });
  window.whep = pc;
  return 'ok';
})(%q, %q)`

// chromiumWHEPStats reads the WHEP player's video: frames decoded, frame
// width and codec, from getStats (W3C webrtc-stats inbound-rtp).
const chromiumWHEPStats = `(async () => {
  const out = { framesDecoded: 0, frameWidth: 0, codec: '' };
  const stats = await window.whep.getStats();
  const codecs = {};
  stats.forEach((r) => { if (r.type === 'codec') codecs[r.id] = r.mimeType; });
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out.framesDecoded = r.framesDecoded || 0;
      out.frameWidth = r.frameWidth || 0;
      out.codec = codecs[r.codecId] || '';
    }
  });
  return out;
})()`

type whepStats struct {
	FramesDecoded int    `json:"framesDecoded"`
	FrameWidth    int    `json:"frameWidth"`
	Codec         string `json:"codec"`
}

// openChromiumWHEP opens a tab on the server's lobby and plays the class
// there through WHEP.
func openChromiumWHEP(t *testing.T, b *browser, name string, srv *server, room string) *tab {
	t.Helper()
	tb := b.open(t, name, srv.base+"/")
	res, err := eval[string](tb, fmt.Sprintf(chromiumWHEPScript, srv.base+"/whep/"+room, srv.token(t, room, auth.RoleStudent, "Chromium")))
	require.NoError(t, err)
	require.Equal(t, "ok", res)
	return tb
}

// waitDecoding waits for the WHEP player to decode 30 frames of a
// 320-pixel-wide picture in the codec mime.
func (tb *tab) waitDecoding(t *testing.T, mime string) {
	t.Helper()
	waitFor(t, 60*time.Second, tb.name+": WHEP video decoding", func() (bool, string) {
		s, err := eval[whepStats](tb, chromiumWHEPStats)
		return err == nil && s.FramesDecoded >= 30 && s.FrameWidth == 320 && strings.EqualFold(s.Codec, mime),
			fmt.Sprintf("%+v err=%v", s, err)
	})
}

// ffprobeVideo reads a file's video codec and picture size.
func ffprobeVideo(t *testing.T, path string) (codec string, width, height int) {
	t.Helper()
	bin, err := exec.LookPath("ffprobe")
	require.NoError(t, err, "ffprobe is needed: run scripts/test, which installs ffmpeg")
	out, err := exec.Command(bin, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height", "-of", "json", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	var p struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal(out, &p))
	require.Len(t, p.Streams, 1, "one video stream")
	return p.Streams[0].CodecName, p.Streams[0].Width, p.Streams[0].Height
}

// ffprobeFrames decodes a file's video and counts its frames.
func ffprobeFrames(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	require.NoError(t, err, "ffprobe %s", path)
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "frames %q", out)
	return n
}
