# A WHEP player on GStreamer's webrtcbin: receive-only video (VP8, VP9,
# H.264 constrained baseline and High) and Opus, one complete offer
# POSTed with the bearer token, the answer applied; every stream decoded
# (decodebin) into a counting sink. After the given seconds of playing it
# prints what it decoded and DELETEs the session:
#
#   DECODED <video frames> <width>x<height> <encoding-name>
#
#   gst_whep.py URL TOKEN SECONDS
import sys, threading
from gst_session import Gst, GstWebRTC, Session, out

url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
VIDEO = ('application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000;'
         'application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000;'
         'application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,'
         'packetization-mode=(string)1,profile-level-id=(string)42e01f;'
         'application/x-rtp,media=video,encoding-name=H264,payload=104,clock-rate=90000,'
         'packetization-mode=(string)1,profile-level-id=(string)64001f')
AUDIO = 'application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2'
lock = threading.Lock()
decoded = {'frames': 0, 'size': '0x0', 'enc': ''}


def on_frame(sink, buf, pad):
    with lock:
        decoded['frames'] += 1
        first = decoded['frames'] == 1
        s = pad.get_current_caps().get_structure(0)
        decoded['size'] = '%dx%d' % (s.get_int('width')[1], s.get_int('height')[1])
    if first:
        out('FIRSTFRAME', decoded['size'])


def on_decoded(_, pad, media):
    sink = Gst.ElementFactory.make('fakesink')
    sink.set_property('sync', False)
    if media == 'video':
        sink.set_property('signal-handoffs', True)
        sink.connect('handoff', on_frame)
    pipe.add(sink)
    sink.sync_state_with_parent()
    pad.link(sink.get_static_pad('sink'))


def on_pad(_, pad):
    if pad.direction != Gst.PadDirection.SRC:
        return
    s = pad.get_current_caps().get_structure(0)
    media = s.get_string('media')
    if media == 'video':
        decoded['enc'] = s.get_string('encoding-name')
        out('TRACK', media, decoded['enc'])
    dec = Gst.ElementFactory.make('decodebin')
    dec.connect('pad-added', on_decoded, media)
    pipe.add(dec)
    dec.sync_state_with_parent()
    pad.link(dec.get_static_pad('sink'))


def report():
    with lock:
        out('DECODED', decoded['frames'], decoded['size'], decoded['enc'])


Gst.init(None)
pipe = Gst.Pipeline.new('player')
w = Gst.ElementFactory.make('webrtcbin', 'w')
w.set_property('bundle-policy', GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
pipe.add(w)
session = Session(pipe, w, url, token, seconds, before_stop=report)
w.connect('pad-added', on_pad)
recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
w.emit('add-transceiver', recvonly, Gst.Caps.from_string(VIDEO))
w.emit('add-transceiver', recvonly, Gst.Caps.from_string(AUDIO))
session.run()
