# A WHEP player on GStreamer's webrtcbin: receive-only video (VP8, VP9,
# H.264 constrained baseline and High) and Opus, one complete offer
# POSTed with the bearer token, the answer applied; every stream decoded
# (decodebin) into a counting sink. After the given seconds of playing it
# prints what it decoded and DELETEs the session:
#
#   DECODED <video frames> <width>x<height> <encoding-name>
#
#   gst_whep.py URL TOKEN SECONDS
import sys, threading, urllib.request
import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
gi.require_version('GstSdp', '1.0')
from gi.repository import Gst, GstWebRTC, GstSdp, GLib

url, token, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
VIDEO = ('application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000;'
         'application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000;'
         'application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,'
         'packetization-mode=(string)1,profile-level-id=(string)42e01f;'
         'application/x-rtp,media=video,encoding-name=H264,payload=104,clock-rate=90000,'
         'packetization-mode=(string)1,profile-level-id=(string)64001f')
AUDIO = 'application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2'
Gst.init(None)
pipe = Gst.Pipeline.new('player')
w = Gst.ElementFactory.make('webrtcbin', 'w')
w.set_property('bundle-policy', GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
pipe.add(w)
loop = GLib.MainLoop()
state = {'rc': 1, 'frames': 0, 'size': '0x0', 'enc': ''}
out_lock = threading.Lock()

def out(*a):
    with out_lock:
        sys.stdout.write(' '.join(str(x) for x in a) + '\n')
        sys.stdout.flush()

def on_frame(sink, buf, pad):
    with out_lock:
        state['frames'] += 1
        first = state['frames'] == 1
        s = pad.get_current_caps().get_structure(0)
        state['size'] = '%dx%d' % (s.get_int('width')[1], s.get_int('height')[1])
    if first:
        out('FIRSTFRAME', state['size'])

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
        state['enc'] = s.get_string('encoding-name')
        out('TRACK', media, state['enc'])
    dec = Gst.ElementFactory.make('decodebin')
    dec.connect('pad-added', on_decoded, media)
    pipe.add(dec)
    dec.sync_state_with_parent()
    pad.link(dec.get_static_pad('sink'))

def post():
    offer = w.get_property('local-description').sdp.as_text()
    req = urllib.request.Request(url, data=offer.encode(), method='POST',
        headers={'Authorization': 'Bearer ' + token, 'Content-Type': 'application/sdp'})
    try:
        resp = urllib.request.urlopen(req, timeout=10)
    except Exception as e:
        out('ERROR POST', e, getattr(e, 'read', lambda: b'')().decode())
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
    reply = promise.get_reply()
    w.emit('set-local-description', reply.get_value('offer'), Gst.Promise.new())

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
    with out_lock:
        frames, size, enc = state['frames'], state['size'], state['enc']
    out('DECODED', frames, size, enc)
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

state['base'] = url.split('/whep/')[0]
w.connect('on-negotiation-needed', on_negotiation_needed)
w.connect('notify::ice-gathering-state', on_gathering)
w.connect('notify::connection-state', on_state)
w.connect('pad-added', on_pad)
recvonly = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
w.emit('add-transceiver', recvonly, Gst.Caps.from_string(VIDEO))
w.emit('add-transceiver', recvonly, Gst.Caps.from_string(AUDIO))
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect('message', on_bus)
pipe.set_state(Gst.State.PLAYING)
GLib.timeout_add_seconds(seconds + 30, lambda: (out('ERROR timeout'), loop.quit()))
loop.run()
pipe.set_state(Gst.State.NULL)
sys.exit(state['rc'])
