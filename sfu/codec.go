package sfu

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// matchCodec finds in list the codec c is best forwarded as: same MIME
// type and clock rate, a receiver able to decode it (fmtpScore), and
// of those the best fit (for H.264 the same profile first, h264Score);
// ties go to the earlier codec, the receiver's preference.
func matchCodec(c webrtc.RTPCodecParameters, list []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	best, bestScore := -1, -1
	for i := range list {
		l := &list[i]
		if !strings.EqualFold(l.MimeType, c.MimeType) || l.ClockRate != c.ClockRate {
			continue
		}
		if score := fmtpScore(c.MimeType, c.SDPFmtpLine, l.SDPFmtpLine); score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return webrtc.RTPCodecParameters{}, false
	}
	return list[best], true
}

// fmtpScore ranks how well a receiver with format parameters b fits a
// stream described by a: -1 when it cannot decode it, otherwise higher is
// better. For H.264 the packetization mode must allow the stream's
// packets and any profile is forwarded, the closest first (h264Score);
// for VP9 the profile-id must be the same (a profile 0 decoder cannot
// decode 10-bit profile 2, RFC 9628 6).
func fmtpScore(mime, a, b string) int {
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		return h264Score(parseFmtp(a), parseFmtp(b))
	case strings.EqualFold(mime, webrtc.MimeTypeVP9):
		if orDefault(parseFmtp(a)["profile-id"], "0") != orDefault(parseFmtp(b)["profile-id"], "0") {
			return -1
		}
	}
	return 0
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
