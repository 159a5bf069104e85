package sfu

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// matchCodec finds in list the codec c can be forwarded as: same MIME type
// and clock rate, and for H.264 and VP9 the same profile (a decoder for
// another profile may not decode the stream). It prefers an exact fmtp
// match and falls back to the first codec with the MIME type.
func matchCodec(c webrtc.RTPCodecParameters, list []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var fallback *webrtc.RTPCodecParameters
	for i := range list {
		l := &list[i]
		if !strings.EqualFold(l.MimeType, c.MimeType) || l.ClockRate != c.ClockRate {
			continue
		}
		if fmtpCompatible(c.MimeType, c.SDPFmtpLine, l.SDPFmtpLine) {
			return *l, true
		}
		if fallback == nil {
			fallback = l
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// fmtpCompatible compares the format parameters that decide decodability:
// H.264 packetization-mode and profile (RFC 6184 8.1: profile_idc and the
// constraint flags; the level may differ), VP9 profile-id.
func fmtpCompatible(mime, a, b string) bool {
	pa, pb := parseFmtp(a), parseFmtp(b)
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		pla, plb := pa["profile-level-id"], pb["profile-level-id"]
		return orDefault(pa["packetization-mode"], "0") == orDefault(pb["packetization-mode"], "0") &&
			len(pla) >= 4 && len(plb) >= 4 && strings.EqualFold(pla[:4], plb[:4])
	case strings.EqualFold(mime, webrtc.MimeTypeVP9):
		return orDefault(pa["profile-id"], "0") == orDefault(pb["profile-id"], "0")
	}
	return true
}

func parseFmtp(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
