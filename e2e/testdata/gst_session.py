# The part of a WHIP or WHEP client on GStreamer's webrtcbin that both
# directions share (RFC 9725): one complete offer, made once ICE gathering
# is done, POSTed with the bearer token; the answer applied; after the
# given seconds connected, a DELETE of the session. Lines go to stdout
# (POSTED, STATE, DELETED, ERROR) for the Go test to read.
import sys, threading, urllib.request
import gi
gi.require_version('Gst', '1.0')
gi.require_version('GstWebRTC', '1.0')
gi.require_version('GstSdp', '1.0')
from gi.repository import Gst, GstWebRTC, GstSdp, GLib

# webrtcbin calls back from its own threads: print writes each word
# apart, so one line is written whole, under a lock.
_out_lock = threading.Lock()


def out(*a):
    with _out_lock:
        sys.stdout.write(' '.join(str(x) for x in a) + '\n')
        sys.stdout.flush()


class Session:
    # edit_offer changes the offer's text before it is POSTed; before_stop
    # runs when the seconds are over, before the DELETE.
    def __init__(self, pipe, w, url, token, seconds, edit_offer=None, before_stop=None):
        self.pipe, self.w, self.url, self.token, self.seconds = pipe, w, url, token, seconds
        self.edit_offer, self.before_stop = edit_offer, before_stop
        self.loop = GLib.MainLoop()
        self.rc, self.posted, self.timer, self.location = 1, False, None, None
        self.base = url.rsplit('/', 2)[0]
        w.connect('on-negotiation-needed', self.on_negotiation_needed)
        w.connect('notify::ice-gathering-state', self.on_gathering)
        w.connect('notify::connection-state', self.on_state)
        bus = pipe.get_bus()
        bus.add_signal_watch()
        bus.connect('message', self.on_bus)

    def run(self):
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.timeout_add_seconds(self.seconds + 30, lambda: (out('ERROR timeout'), self.loop.quit()))
        self.loop.run()
        self.pipe.set_state(Gst.State.NULL)
        sys.exit(self.rc)

    def post(self):
        offer = self.w.get_property('local-description').sdp.as_text()
        if self.edit_offer:
            offer = self.edit_offer(offer)
        req = urllib.request.Request(self.url, data=offer.encode(), method='POST',
            headers={'Authorization': 'Bearer ' + self.token, 'Content-Type': 'application/sdp'})
        try:
            resp = urllib.request.urlopen(req, timeout=10)
        except Exception as e:
            out('ERROR POST', e, getattr(e, 'read', lambda: b'')().decode())
            self.loop.quit()
            return False
        self.location = resp.headers['Location']
        _, msg = GstSdp.SDPMessage.new_from_text(resp.read().decode())
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.w.emit('set-remote-description', answer, Gst.Promise.new())
        out('POSTED', resp.status, self.location)
        return False

    def on_gathering(self, *_):
        if self.w.get_property('ice-gathering-state') == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.posted:
            self.posted = True
            GLib.idle_add(self.post)

    def on_offer(self, promise, _):
        promise.wait()
        reply = promise.get_reply()  # keep it: the offer lives inside it
        self.w.emit('set-local-description', reply.get_value('offer'), Gst.Promise.new())

    def on_negotiation_needed(self, *_):
        self.w.emit('create-offer', None, Gst.Promise.new_with_change_func(self.on_offer, None))

    def on_state(self, *_):
        st = self.w.get_property('connection-state')
        out('STATE', st.value_nick)
        if st == GstWebRTC.WebRTCPeerConnectionState.CONNECTED and self.timer is None:
            self.timer = GLib.timeout_add_seconds(self.seconds, self.stop)
        if st == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self.loop.quit()

    def stop(self):
        if self.before_stop:
            self.before_stop()
        req = urllib.request.Request(self.base + self.location, method='DELETE',
            headers={'Authorization': 'Bearer ' + self.token})
        out('DELETED', urllib.request.urlopen(req, timeout=10).status)
        self.rc = 0
        self.loop.quit()
        return False

    def on_bus(self, _, msg):
        if msg.type == Gst.MessageType.ERROR:
            out('ERROR', msg.parse_error())
            self.loop.quit()
