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
import sys
from gst_session import Gst, GstWebRTC, Session, out

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


def edit_offer(offer):
    if codec.startswith('h264'):
        offer = ''.join(l for l in offer.splitlines(True) if not l.startswith('a=fmtp:102 '))
    if codec == 'h264-high':
        offer = offer.replace('a=rtpmap:102 H264/90000\r\n', 'a=rtpmap:102 H264/90000\r\n'
            'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n')
    for line in offer.splitlines():
        if line.startswith('a=rtpmap:') or line.startswith('a=fmtp:'):
            out('OFFER', line)
    return offer


Gst.init(None)
pipe = Gst.parse_launch(
    'webrtcbin name=w bundle-policy=max-bundle ' + RAW + VIDEO + ' ! w. '
    'audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! '
    'application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w.')
w = pipe.get_by_name('w')
session = Session(pipe, w, url, token, seconds, edit_offer=edit_offer)
for i in range(2):  # video, audio
    w.emit('get-transceiver', i).set_property('direction', GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
session.run()
