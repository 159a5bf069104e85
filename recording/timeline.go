package recording

import "time"

const (
	// resyncTolerance: a sender report moves a track's mapping only when
	// it disagrees with it by more than this. Smaller differences are
	// jitter; moving for them would only make timestamps wobble.
	resyncTolerance = 15 * time.Millisecond
	// maxSkew: a packet whose mapped time is this far from its arrival
	// means the sender's RTP clock jumped (an encoder restart under the
	// same SSRC); the track is anchored again on arrival, so the jump
	// shows as a gap in the file instead of a leap in time.
	maxSkew = 3 * time.Second
)

// senderReport is an RTCP SR mapping (RFC 3550 6.4.1): the sender's wall
// clock time ntp corresponds to RTP timestamp rtpTS.
type senderReport struct {
	ntp   time.Time
	rtpTS uint32
	ok    bool
}

// syncGroup is shared by the tracks of one publisher (one Attach call).
// Their sender reports use one wall clock, the sender's; offset converts
// it to the server's clock, measured once on the first packet mapped
// through a sender report. A/V alignment then comes from the reports, not
// from how differently audio and video were delayed on the way.
type syncGroup struct {
	offset int64 // server arrival (unix ns) minus sender time (unix ns)
	ok     bool
}

// clock maps one track's RTP timestamps onto the recording's timeline,
// unix nanoseconds on the server's clock. It is owned by the writer
// goroutine.
type clock struct {
	rate      int64 // RTP clock rate, Hz
	started   bool
	lastTS    uint32
	lastExt   int64 // lastTS extended past 32-bit wrap-around
	anchored  bool
	anchorExt int64
	anchorNS  int64
	synced    bool // anchored on a sender report
	lastSR    senderReport
	// steady clocks (video) take only their first sender report: a later
	// correction would move frames closer together than their frame
	// interval, which players and ffmpeg read as a broken frame rate. The
	// audio clock absorbs the corrections, so A/V alignment still follows
	// the reports.
	steady bool
}

func newClock(rate uint32, steady bool) clock {
	if rate == 0 {
		rate = 90000
	}
	return clock{rate: int64(rate), steady: steady}
}

// ext extends ts to 64 bits relative to the newest timestamp seen. RTP
// timestamps wrap at 2^32 (RFC 3550 5.1); a difference read as a signed
// 32-bit number is right as long as packets are less than half the range
// (13 hours at 90 kHz) apart, and it handles reordering in both directions.
func (c *clock) ext(ts uint32) int64 {
	if !c.started {
		return int64(ts)
	}
	return c.lastExt + int64(int32(ts-c.lastTS))
}

// at maps ts to the timeline. The clock must have observed a packet.
func (c *clock) at(ts uint32) int64 {
	return c.anchorNS + (c.ext(ts)-c.anchorExt)*int64(time.Second)/c.rate
}

// observe takes one received packet: its timestamp, its arrival (unix ns)
// and the track's latest sender report.
func (c *clock) observe(ts uint32, arrival int64, sr senderReport, g *syncGroup) {
	e := c.ext(ts)
	if !c.started || e > c.lastExt {
		c.started, c.lastTS, c.lastExt = true, ts, e
	}
	if !c.anchored {
		c.anchor(e, arrival, false)
	}
	if sr.ok && (sr.rtpTS != c.lastSR.rtpTS || !sr.ntp.Equal(c.lastSR.ntp) || !c.lastSR.ok) {
		c.lastSR = sr
		c.applySR(e, arrival, g)
	}
	if d := c.at(ts) - arrival; d > int64(maxSkew) || d < -int64(maxSkew) {
		c.anchor(e, arrival, false)
	}
}

// applySR anchors the clock on the sender's wall clock (converted to the
// server's through the group's offset) when that disagrees with the
// current mapping by more than resyncTolerance, or the first time.
func (c *clock) applySR(e, arrival int64, g *syncGroup) {
	srExt := c.lastExt + int64(int32(c.lastSR.rtpTS-c.lastTS))
	sender := c.lastSR.ntp.UnixNano() + (e-srExt)*int64(time.Second)/c.rate
	if !g.ok {
		g.offset, g.ok = arrival-sender, true
	}
	target := sender + g.offset
	if c.synced && c.steady {
		return
	}
	cur := c.anchorNS + (e-c.anchorExt)*int64(time.Second)/c.rate
	if d := target - cur; !c.synced || d > int64(resyncTolerance) || d < -int64(resyncTolerance) {
		c.anchor(e, target, true)
	}
}

func (c *clock) anchor(e, ns int64, synced bool) {
	c.anchored, c.anchorExt, c.anchorNS, c.synced = true, e, ns, synced
}
