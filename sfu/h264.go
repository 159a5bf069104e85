package sfu

import (
	"fmt"
	"strconv"
	"strings"
)

// h264Profile is an H.264 profile as WebRTC endpoints negotiate it: the
// profile_idc of profile-level-id together with the constraint flags that
// narrow it (RFC 6184 8.1; the table is libwebrtc's, which every browser
// follows).
type h264Profile uint8

const (
	h264Unknown h264Profile = iota
	h264ConstrainedBaseline
	h264Baseline
	h264Main
	h264ConstrainedHigh
	h264High
	h264PredictiveHigh444
)

// classifyH264 names the profile of a profile_idc and profile_iop pair,
// following libwebrtc's table, which every browser uses: RFC 6184 8.1 and
// H.264 A.2 define the constraint flags (constraint_set0..5, the top six
// bits of profile_iop; the last two are reserved zero), and a pattern
// such as x1xx0000 fixes the flags whose bits are given.
func classifyH264(idc, iop byte) h264Profile {
	switch {
	case idc == 0x64 && iop == 0x00:
		return h264High
	case idc == 0x64 && iop == 0x0c:
		return h264ConstrainedHigh
	case idc == 0xf4 && iop == 0x00:
		return h264PredictiveHigh444
	case iop&0x0f != 0:
		return h264Unknown
	case idc == 0x42 && iop&0x40 != 0, // x1xx0000
		idc == 0x4d && iop&0x80 != 0,    // 1xxx0000
		idc == 0x58 && iop&0xc0 == 0xc0: // 11xx0000
		return h264ConstrainedBaseline
	case idc == 0x42, // x0xx0000
		idc == 0x58 && iop&0xc0 == 0x80: // 10xx0000
		return h264Baseline
	case idc == 0x4d && iop&0x20 == 0: // 0x0x0000
		return h264Main
	}
	return h264Unknown
}

// parseProfileLevelID reads an fmtp profile-level-id (six hex digits:
// profile_idc, profile_iop, level_idc) into its profile.
func parseProfileLevelID(s string) h264Profile {
	if len(s) != 6 {
		return h264Unknown
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return h264Unknown
	}
	return classifyH264(byte(v>>16), byte(v>>8))
}

// h264Includes reports whether a decoder of profile dec decodes every
// stream of profile s: constrained baseline is the common subset of
// baseline, main and high; constrained high is a subset of high.
func h264Includes(dec, s h264Profile) bool {
	switch s {
	case h264ConstrainedBaseline:
		return dec != h264PredictiveHigh444 && dec != h264Unknown
	case h264Main:
		return dec == h264High
	case h264ConstrainedHigh:
		return dec == h264High
	}
	return dec == s
}

// h264Score ranks how well a receiver's H.264 format parameters dec fit a
// stream described by s: -1 when the receiver cannot take the stream's
// packets at all (FU-A and STAP-A need packetization-mode 1, RFC 6184
// 6.3), 6 for the same profile and mode, 4 for a profile whose decoders
// decode the stream's, and 2 for any other profile. The last is a
// deliberate liberty: browsers decode every profile they list (their
// decoders are not profile-specific), and refusing the class would leave
// one kind of viewer without it while another watches. One more point
// when the packetization modes are equal.
func h264Score(s, dec map[string]string) int {
	sm, dm := orDefault(s["packetization-mode"], "0"), orDefault(dec["packetization-mode"], "0")
	if sm != "0" && sm != dm {
		return -1
	}
	score := 2
	sp, dp := parseProfileLevelID(s["profile-level-id"]), parseProfileLevelID(dec["profile-level-id"])
	switch {
	case sp != h264Unknown && sp == dp:
		score = 6
	case sp != h264Unknown && h264Includes(dp, sp):
		score = 4
	}
	if sm == dm {
		score++
	}
	return score
}

// hasProfile reports whether H.264 format parameters state a profile.
func hasProfile(fmtp string) bool {
	return parseProfileLevelID(parseFmtp(fmtp)["profile-level-id"]) != h264Unknown
}

// spsProfile finds a sequence parameter set (H.264 7.3.2.1.1) at the
// start of an RTP payload, alone (RFC 6184 5.6), in a STAP-A (5.7.1) or
// opening a FU-A (5.8), and returns its profile-level-id: profile_idc,
// the constraint flags and level_idc, its first three bytes after the
// NAL unit header.
func spsProfile(p []byte) (string, bool) {
	if len(p) < 1 {
		return "", false
	}
	switch t := p[0] & 0x1f; t {
	case naluSPS:
		return profileBytes(p[1:])
	case naluSTAPA:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i+size > len(p) {
				return "", false
			}
			if size > 0 && p[i]&0x1f == naluSPS {
				return profileBytes(p[i+1 : i+size])
			}
			i += size
		}
	case naluFUA:
		if len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == naluSPS {
			return profileBytes(p[2:])
		}
	}
	return "", false
}

func profileBytes(b []byte) (string, bool) {
	if len(b) < 3 || classifyH264(b[0], b[1]) == h264Unknown {
		return "", false
	}
	return fmt.Sprintf("%02x%02x%02x", b[0], b[1], b[2]), true
}

// withProfile returns H.264 format parameters fmtp with the stream's own
// profile-level-id, and packetization-mode 1 unless fmtp states one: an
// offer without it (RFC 6184's default is mode 0) comes from publishers
// whose keyframes exceed a datagram, so they fragment (FU-A), and a mode 1
// receiver also takes single NAL unit packets (6.3).
func withProfile(fmtp, plid string) string {
	params := parseFmtp(fmtp)
	out := []string{"level-asymmetry-allowed=1"}
	mode := params["packetization-mode"]
	if mode == "" {
		mode = "1"
	}
	out = append(out, "packetization-mode="+mode, "profile-level-id="+plid)
	for _, kv := range strings.Split(fmtp, ";") {
		k, _, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch strings.ToLower(k) {
		case "", "level-asymmetry-allowed", "packetization-mode", "profile-level-id":
		default:
			out = append(out, strings.TrimSpace(kv))
		}
	}
	return strings.Join(out, ";")
}
