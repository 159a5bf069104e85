package sfu

import (
	"strconv"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Video feedback: generic NACK and PLI (RFC 4585), FIR (RFC 5104) and
// transport-wide congestion control, which browsers use for send-side
// bandwidth estimation toward the SFU. goog-remb is not offered: the SFU
// does no receive-side estimation that would fill REMB messages.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// engineCodecs lists what Lectern forwards, in order of preference. RTX
// (RFC 4588) is offered to publishers so a browser answers the SFU's NACKs
// on a repair stream, which pion unwraps; subscribers are offered only the
// primary codec and get retransmissions on the media SSRC.
func engineCodecs() (video, audio []webrtc.RTPCodecParameters) {
	v := func(pt uint8, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback,
			},
			PayloadType: webrtc.PayloadType(pt),
		}
	}
	const h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="
	video = []webrtc.RTPCodecParameters{
		v(96, webrtc.MimeTypeVP8, ""),
		v(98, webrtc.MimeTypeVP9, "profile-id=0"),
		v(102, webrtc.MimeTypeH264, h264+"42001f"),
		v(106, webrtc.MimeTypeH264, h264+"42e01f"),
		v(112, webrtc.MimeTypeH264, h264+"64001f"),
		v(114, webrtc.MimeTypeH264, h264+"640028"),
		v(45, webrtc.MimeTypeAV1, ""),
	}
	audio = []webrtc.RTPCodecParameters{{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: 111,
	}}
	return video, audio
}

// newMediaEngine registers the codecs, their RTX and the header extensions
// the interceptors need.
func newMediaEngine(video, audio []webrtc.RTPCodecParameters) (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range video {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		rtx := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeRTX, ClockRate: 90000,
				SDPFmtpLine: "apt=" + strconv.Itoa(int(c.PayloadType)),
			},
			PayloadType: c.PayloadType + 1,
		}
		if err := me.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, c := range audio {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	// The transport-wide sequence number extension lets the TWCC
	// interceptor report arrival times to publishers.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		ext := webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}
		if err := me.RegisterHeaderExtension(ext, kind); err != nil {
			return nil, err
		}
	}
	return me, nil
}

// newInterceptors builds the minimal chain. There is deliberately no NACK
// responder: it would keep a copy of every outgoing packet per subscriber,
// while down tracks answer NACKs from the track's one shared ring. The
// NACK generator requests retransmissions from publishers (it acts only on
// incoming streams that negotiated nack), the report interceptors send
// RTCP receiver and sender reports (RFC 3550 6.4), and the TWCC sender
// gives publishers congestion feedback.
func newInterceptors(lf logging.LoggerFactory) (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	recv, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	send, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	tw, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(lf))
	if err != nil {
		return nil, err
	}
	reg.Add(gen)
	reg.Add(recv)
	reg.Add(send)
	reg.Add(tw)
	return reg, nil
}

// newOutInterceptors builds the chain of peer connections that only send
// (subscribers and WHEP viewers): an empty one. The NACK generator,
// receiver reports and TWCC feedback act only on incoming media, which
// these connections never have, yet each would still run a goroutine and a
// ticker per connection. NACKs are answered by the down tracks from the
// tracks' shared rings, and sender reports (RFC 3550 6.4.1) are sent by
// the engine for every down track from one goroutine (reports.go), rather
// than by pion's report interceptor, which takes a lock per packet and runs
// a ticker goroutine per connection.
func newOutInterceptors(logging.LoggerFactory) (*interceptor.Registry, error) {
	return &interceptor.Registry{}, nil
}
