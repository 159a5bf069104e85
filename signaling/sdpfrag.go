package signaling

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// maxFragBytes bounds a trickle ICE PATCH body: a handful of candidates.
const maxFragBytes = 16 << 10

// sdpFrag is a trickle ICE SDP fragment (RFC 8840 section 9): the ICE
// credentials of the session it belongs to and candidates per media
// section.
type sdpFrag struct {
	ufrag, pwd string
	cands      []webrtc.ICECandidateInit
}

// parseSDPFrag reads an application/trickle-ice-sdpfrag body. Lines other
// than credentials, m=, mid and candidates (ice-options, group, end of
// candidates) carry nothing the server needs and are skipped.
func parseSDPFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	var mid *string
	var mline uint16
	sections := -1
	for _, raw := range strings.Split(body, "\n") {
		line := strings.TrimRight(raw, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			sections++
			mline, mid = uint16(sections), nil
		case strings.HasPrefix(line, "a=mid:"):
			v := strings.TrimPrefix(line, "a=mid:")
			mid = &v
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			if sections < 0 {
				return f, fmt.Errorf("%w: a candidate outside a media section", ErrBadSDP)
			}
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a="), SDPMid: mid}
			idx := mline
			c.SDPMLineIndex = &idx
			f.cands = append(f.cands, c)
		case len(line) < 2 || line[1] != '=':
			return f, fmt.Errorf("%w: %.40q is not an SDP line", ErrBadSDP, line)
		}
	}
	if f.ufrag == "" && f.pwd == "" && len(f.cands) == 0 {
		return f, fmt.Errorf("%w: the fragment has no ICE credentials and no candidates", ErrBadSDP)
	}
	return f, checkICECreds(f.ufrag, f.pwd)
}

// checkICECreds checks credentials against RFC 8839 section 5.4:
// ice-ufrag is 4 to 256 ice-chars, ice-pwd 22 to 256, where an ice-char
// is ALPHA / DIGIT / "+" / "/". Either may be absent (a trickle of
// candidates alone); one without the other is no ICE restart.
func checkICECreds(ufrag, pwd string) error {
	if ufrag == "" && pwd == "" {
		return nil
	}
	if !iceChars(ufrag, 4) {
		return fmt.Errorf("%w: ice-ufrag must be 4 to 256 of A-Z a-z 0-9 + / (RFC 8839 5.4)", ErrBadSDP)
	}
	if pwd != "" && !iceChars(pwd, 22) {
		return fmt.Errorf("%w: ice-pwd must be 22 to 256 of A-Z a-z 0-9 + / (RFC 8839 5.4)", ErrBadSDP)
	}
	return nil
}

// iceChars: s is min to 256 ice-chars.
func iceChars(s string, min int) bool {
	if len(s) < min || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '+' || c == '/' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// answerFrag is the fragment answering an ICE restart (RFC 9725 4.3.3):
// the server's new credentials and candidates, taken from its new answer.
func answerFrag(sdp string) string {
	var b strings.Builder
	ufrag, pwd := "", ""
	var mline, mid string
	var cands []string
	for _, raw := range strings.Split(sdp, "\n") {
		line := strings.TrimRight(raw, "\r")
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:") && ufrag == "":
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:") && pwd == "":
			pwd = line
		case strings.HasPrefix(line, "m=") && mline == "":
			mline = line
		case strings.HasPrefix(line, "a=mid:") && mid == "":
			mid = line
		case strings.HasPrefix(line, "a=candidate:"):
			cands = append(cands, line)
		}
	}
	for _, l := range []string{ufrag, pwd} {
		b.WriteString(l + "\r\n")
	}
	if len(cands) > 0 && mline != "" {
		// With BUNDLE the candidates of the first section serve them all.
		b.WriteString(mline + "\r\n" + mid + "\r\n")
		seen := map[string]bool{}
		for _, c := range cands {
			if !seen[c] {
				seen[c] = true
				b.WriteString(c + "\r\n")
			}
		}
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}
