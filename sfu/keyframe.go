package sfu

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// keyframeFunc reports whether an RTP payload starts a keyframe.
type keyframeFunc func(payload []byte) bool

// keyframeDetector returns the detector for a codec, nil when the codec
// has no keyframes (audio) or is unknown.
func keyframeDetector(mimeType string) keyframeFunc {
	switch {
	case strings.EqualFold(mimeType, webrtc.MimeTypeVP8):
		return isVP8Keyframe
	case strings.EqualFold(mimeType, webrtc.MimeTypeVP9):
		return isVP9Keyframe
	case strings.EqualFold(mimeType, webrtc.MimeTypeH264):
		return isH264Keyframe
	case strings.EqualFold(mimeType, webrtc.MimeTypeAV1):
		return isAV1Keyframe
	}
	return nil
}

// IsKeyframe reports whether payload, an RTP payload of the codec
// mimeType, is the first packet of a keyframe. It is false for audio and
// unknown codecs and for truncated payloads (never a panic).
func IsKeyframe(mimeType string, payload []byte) bool {
	if f := keyframeDetector(mimeType); f != nil {
		return f(payload)
	}
	return false
}

// isVP8Keyframe follows RFC 7741: the payload descriptor (4.2) must mark
// the start (S=1) of partition 0 (PID=0), and the VP8 payload header (4.3)
// must have P=0, the inverse key frame flag.
func isVP8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	if b0&0x10 == 0 || b0&0x07 != 0 {
		return false
	}
	i := 1
	if b0&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture ID, 7 or 15 bits (M bit)
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	return len(p) > i && p[i]&0x01 == 0
}

// isVP9Keyframe follows RFC 9628 4.2: a picture that is not inter-picture
// predicted (P=0) and the start of a frame (B=1); with layer indices (L=1)
// only the base spatial layer (SID=0) starts a keyframe.
func isVP9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	if b0&0x40 != 0 || b0&0x08 == 0 {
		return false
	}
	if b0&0x20 == 0 { // no layer indices
		return true
	}
	i := 1
	if b0&0x80 != 0 { // I: picture ID, 7 or 15 bits (M bit)
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return (p[i]>>1)&0x07 == 0
}

// H.264 NAL unit types, RFC 6184 5.2 and ITU-T H.264 table 7-1.
const (
	naluIDR   = 5
	naluSPS   = 7
	naluSTAPA = 24
	naluFUA   = 28
)

func h264Key(t byte) bool { return t == naluIDR || t == naluSPS }

// isH264Keyframe follows RFC 6184: an IDR slice or an SPS in a single NAL
// unit packet (5.6), inside a STAP-A aggregate (5.7.1), or at the start of
// a FU-A fragment (5.8, S=1).
func isH264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return h264Key(t)
	case t == naluSTAPA:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if h264Key(p[i] & 0x1f) {
				return true
			}
			i += size
		}
	case t == naluFUA:
		return len(p) >= 2 && p[1]&0x80 != 0 && h264Key(p[1]&0x1f)
	}
	return false
}

// isAV1Keyframe is best effort: the AV1 RTP payload format's aggregation
// header sets N=1 on the first packet of a coded video sequence, which
// starts with a key frame.
func isAV1Keyframe(p []byte) bool {
	return len(p) >= 1 && p[0]&0x08 != 0
}
