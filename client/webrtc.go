package client

import (
	"fmt"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// Payload types the client offers. They match what browsers use, so a
// stream published by this client looks like a browser's to the server.
const (
	payloadTypeVP8  = 96
	payloadTypeOpus = 111
)

// APIOptions tunes NewAPI.
type APIOptions struct {
	// Logger receives pion's warnings and errors.
	Logger zerolog.Logger
	// TCP adds ICE-TCP (RFC 6544) candidates next to UDP ones.
	TCP bool
	// TCPOnly gathers only ICE-TCP candidates, to exercise the fallback.
	TCPOnly bool
	// Interceptors are added before NACK and RTCP reports, nearest the
	// network: what they drop on the way in is lost for the others too.
	Interceptors []interceptor.Factory
}

// NewAPI builds a pion API that only ever uses the loopback interface:
// host candidates on 127.0.0.1, no mDNS (RFC 8445 host candidates are
// enough on one machine), no STUN. It registers VP8 and Opus with NACK
// (RFC 4585 section 6.2.1) and RTCP reports (RFC 3550 section 6.4).
func NewAPI(opts APIOptions) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	for _, f := range opts.Interceptors {
		reg.Add(f)
	}
	if err := webrtc.ConfigureNack(m, reg); err != nil {
		return nil, fmt.Errorf("client: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, fmt.Errorf("client: rtcp reports: %w", err)
	}
	s := webrtc.SettingEngine{LoggerFactory: zerologFactory{log: opts.Logger}}
	s.SetIncludeLoopbackCandidate(true)
	s.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	switch {
	case opts.TCPOnly:
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	case opts.TCP:
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	default:
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(s)), nil
}

func registerCodecs(m *webrtc.MediaEngine) error {
	video := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		PayloadType:        payloadTypeVP8,
	}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("client: register vp8: %w", err)
	}
	audio := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: payloadTypeOpus,
	}
	if err := m.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("client: register opus: %w", err)
	}
	return nil
}

// zerologFactory bridges pion's loggers into zerolog. Only warnings and
// errors pass: pion's debug output is per packet in places.
type zerologFactory struct{ log zerolog.Logger }

func (f zerologFactory) NewLogger(scope string) logging.LeveledLogger {
	return zerologLogger{log: f.log.With().Str("pion", scope).Logger()}
}

type zerologLogger struct{ log zerolog.Logger }

func (l zerologLogger) Trace(string)                      {}
func (l zerologLogger) Tracef(string, ...interface{})     {}
func (l zerologLogger) Debug(string)                      {}
func (l zerologLogger) Debugf(string, ...interface{})     {}
func (l zerologLogger) Info(string)                       {}
func (l zerologLogger) Infof(string, ...interface{})      {}
func (l zerologLogger) Warn(msg string)                   { l.log.Warn().Msg(msg) }
func (l zerologLogger) Warnf(f string, a ...interface{})  { l.log.Warn().Msgf(f, a...) }
func (l zerologLogger) Error(msg string)                  { l.log.Error().Msg(msg) }
func (l zerologLogger) Errorf(f string, a ...interface{}) { l.log.Error().Msgf(f, a...) }
