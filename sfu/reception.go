package sfu

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Reception is what one receiver's report block says of a down track
// (RFC 3550 6.4.1): how a student receives one of the tracks sent to it.
type Reception struct {
	// Kind is the down track's: audio or video.
	Kind webrtc.RTPCodecType
	// FractionLost is the share of packets lost since the receiver's
	// previous report, 0 to 1 (the report's 8-bit fraction / 256).
	FractionLost float64
	// Jitter is the interarrival jitter, converted from RTP timestamp
	// units at the codec's clock rate.
	Jitter time.Duration
	// RTT is the round trip from the report's LSR and DLSR fields (RFC
	// 3550 6.4.1); 0 when the receiver has had no sender report of ours.
	RTT time.Duration
	// At is when the report arrived.
	At time.Time
	// First marks a down track's first report; Since is then how long
	// after the down track was made it came: the wait for the student's
	// media (ICE, DTLS, the first packets).
	First bool
	Since time.Duration
}

// ReceptionObserver receives each report as it arrives. It runs on the
// goroutine reading the student's RTCP, so it must be quick and never
// block; it is called about once a second per down track, never per
// media packet.
type ReceptionObserver interface {
	ObserveReception(Reception)
}

// receptionState is a down track's latest report; zero until the first.
type receptionState struct {
	last     atomic.Pointer[Reception]
	reported atomic.Bool // a first report has come
	created  time.Time
}

// SetReceptionObserver makes o receive the reports of every down track of
// the engine (nil: none). It may be called at any time.
func (e *Engine) SetReceptionObserver(o ReceptionObserver) {
	if o == nil {
		e.stats.observer.Store(nil)
		return
	}
	e.stats.observer.Store(&o)
}

// Reception is the down track's latest report from its receiver; ok is
// false before the first.
func (d *DownTrack) Reception() (r Reception, ok bool) {
	if p := d.reception.last.Load(); p != nil {
		return *p, true
	}
	return Reception{}, false
}

// receptionReports reads the report blocks about this down track's SSRC,
// from a receiver report or a sender report (RFC 3550 6.4.1, 6.4.2).
func (d *DownTrack) receptionReports(clockRate uint32, ssrc uint32, reports []rtcp.ReceptionReport, now time.Time) {
	for i := range reports {
		rr := &reports[i]
		if rr.SSRC != ssrc {
			continue
		}
		r := Reception{
			Kind: d.kind, FractionLost: float64(rr.FractionLost) / 256, At: now,
			RTT: reportRTT(rr.LastSenderReport, rr.Delay, now),
		}
		if clockRate > 0 {
			r.Jitter = time.Duration(float64(rr.Jitter) / float64(clockRate) * float64(time.Second))
		}
		if d.reception.reported.CompareAndSwap(false, true) {
			r.First, r.Since = true, now.Sub(d.reception.created)
		}
		// Stored once complete: the metrics read it from other goroutines.
		d.reception.last.Store(&r)
		if o := d.stats.observer.Load(); o != nil {
			(*o).ObserveReception(r)
		}
	}
}

// reportRTT is the round trip a report block gives (RFC 3550 6.4.1):
// arrival time less LSR less DLSR, all in the middle 32 bits of NTP time
// (1/65536 s). It is 0 without an LSR, or when clocks make it negative.
func reportRTT(lsr, dlsr uint32, now time.Time) time.Duration {
	if lsr == 0 {
		return 0
	}
	a := uint32(timeToNTP(now) >> 16)
	units := a - lsr - dlsr
	if int32(units) < 0 {
		return 0
	}
	return time.Duration(uint64(units) * uint64(time.Second) >> 16)
}

// BytesSent is the media payload the down track has sent, retransmissions
// included: two reads some seconds apart give a student's bitrate.
func (d *DownTrack) BytesSent() uint64 { return d.octets.Load() }
