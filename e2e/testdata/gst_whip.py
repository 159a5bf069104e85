# A WHIP publisher on GStreamer's webrtcbin, an independent WebRTC stack
# (libnice for ICE, its own DTLS-SRTP), standing in for OBS and encoder
# boxes: a test pattern in the given codec and Opus from audiotestsrc,
# sendonly, one complete offer POSTed with the bearer token, the answer
# applied, and after the given seconds a DELETE of the session. The
# encoders never answer keyframe requests: a keyframe comes every
# keyint frames (30 frames a second).
#
#   gst_whip.py URL TOKEN SECONDS CODEC KEYINT
#
# CODEC: vp8, vp9, h264 (constrained baseline offered with a bare
# a=rtpmap and no a=fmtp line at all, as webrtcbin offers when it makes the
# offer before the encoder's caps are known, and as encoder boxes do),
# h264-high (High profile, offered with profile-level-id 64001f and
# packetization-mode 1, as OBS sends).
import sys, threading, urllib.request
import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
gi.require_version('GstSdp', '1.0')
from gi.repository import Gst, GstWebRTC, GstSdp, GLib

url, token, seconds, codec, keyint = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
RAW = 'videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! '
VIDEO = {
    'vp8': 'vp8enc deadline=1 keyframe-max-dist=%d ! rtpvp8pay pt=96 ! '
           'application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000' % keyint,
    'vp9': 'vp9enc deadline=1 keyframe-max-dist=%d ! rtpvp9pay pt=98 ! '
           'application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000' % keyint,
    'h264': 'x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=%d ! '
            'video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1 ! '
            'application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000' % keyint,
    'h264-high': 'x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=%d ! '
                 'video/x-h264,profile=high ! rtph264pay pt=102 config-interval=-1 ! '
                 'application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000' % keyint,
}[codec]
Gst.init(None)
pipe = Gst.parse_launch(
    'webrtcbin name=w bundle-policy=max-bundle ' + RAW + VIDEO + ' ! w. '
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
    if codec.startswith('h264'):
        offer = ''.join(l for l in offer.splitlines(True) if not l.startswith('a=fmtp:102 '))
    if codec == 'h264-high':
        offer = offer.replace('a=rtpmap:102 H264/90000\r\n', 'a=rtpmap:102 H264/90000\r\n'
            'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n')
    for line in offer.splitlines():
        if line.startswith('a=rtpmap:') or line.startswith('a=fmtp:'):
            out('OFFER', line)
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
GLib.timeout_add_seconds(seconds + 30, lambda: (out('ERROR timeout'), loop.quit()))
loop.run()
pipe.set_state(Gst.State.NULL)
sys.exit(state['rc'])
