package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// reportInterval is how often every down track sends an RTCP sender
// report. RFC 3550 6.2 scales the interval with the session, but browsers
// report every second and a receiver cannot align a student's audio and
// video (RFC 3550 6.4.1) before it has a report of each.
const reportInterval = time.Second

// outClock is what a down track's sender reports are computed from: the
// track being sent and the offset added to its RTP timestamps (non-zero
// after a WHEP viewer switched source, switch.go). It is replaced, never
// modified, when the source changes.
type outClock struct {
	track    *Track
	tsOffset uint32
}

// reporter is a peer connection whose down tracks send sender reports.
// overTCP: its media leaves over ICE-TCP (RFC 6544), where a write waits
// for the student's TCP window (see writerPool).
type reporter interface {
	sendReports(now time.Time)
	overTCP() bool
}

// reportLoop sends every down track's sender report each reportInterval,
// for every subscriber and viewer of the engine from one goroutine,
// instead of the ticker goroutine per peer connection pion's report
// interceptor runs. The reports of peers over ICE-TCP are sent aside
// (tcpReports): one student's closed TCP window must neither delay the
// others' reports nor keep the shared UDP socket held, which would keep
// every other goroutine's datagrams (ICE checks, DTLS, RTCP) queued.
func (e *Engine) reportLoop() {
	defer close(e.reportsDone)
	t := time.NewTicker(reportInterval)
	defer t.Stop()
	aside := &tcpReports{busy: map[reporter]bool{}}
	defer aside.wg.Wait() // the peers are closed first: their writes fail
	var peers []reporter
	for {
		select {
		case now := <-t.C:
			peers = e.reporters(peers[:0])
			e.udpConn.hold() // the reports of a tick leave in a few sendmmsg calls
			for _, p := range peers {
				if !p.overTCP() {
					p.sendReports(now)
				}
			}
			e.udpConn.release()
			for _, p := range peers {
				if p.overTCP() {
					aside.send(p, now)
				}
			}
			clear(peers)
		case <-e.stopReports:
			return
		}
	}
}

// tcpReports sends the reports of peers over ICE-TCP each on a goroutine
// of its own, at most one per peer at a time: a peer whose last reports
// still wait for its TCP window skips a tick.
type tcpReports struct {
	mu   sync.Mutex
	busy map[reporter]bool
	wg   sync.WaitGroup
}

func (a *tcpReports) send(p reporter, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busy[p] {
		return
	}
	a.busy[p] = true
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		p.sendReports(now)
		a.mu.Lock()
		delete(a.busy, p)
		a.mu.Unlock()
	}()
}

// reporters appends the engine's peers that send reports to out.
func (e *Engine) reporters(out []reporter) []reporter {
	e.mu.Lock()
	defer e.mu.Unlock()
	for p := range e.peers {
		if r, ok := p.(reporter); ok {
			out = append(out, r)
		}
	}
	return out
}

// sendReports sends one compound RTCP packet with the sender report of
// each down track that has sent media. The down tracks are complete once
// the subscriber is attached (the engine knows it from before).
func (s *Subscriber) sendReports(now time.Time) {
	s.mu.Lock()
	ready := s.attached && !s.closed
	s.mu.Unlock()
	if !ready {
		return
	}
	writeReports(s.pc, s.downs, now)
}

func (s *Subscriber) overTCP() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ownShard != nil
}

func (v *Viewer) overTCP() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ownShard != nil
}

func (v *Viewer) sendReports(now time.Time) {
	v.mu.Lock()
	ready := v.connected && !v.closed
	v.mu.Unlock()
	if !ready {
		return
	}
	writeReports(v.pc, v.DownTracks(), now)
}

// writeReports sends, as one compound RTCP packet, the sender report of
// each of downs that has one.
func writeReports(pc *webrtc.PeerConnection, downs []*DownTrack, now time.Time) {
	var pkts []rtcp.Packet
	for _, d := range downs {
		if sr, ok := d.senderReport(now); ok {
			pkts = append(pkts, sr)
		}
	}
	if len(pkts) > 0 {
		_ = pc.WriteRTCP(pkts)
	}
}

// senderReport is the down track's RTCP sender report at now (RFC 3550
// 6.4.1). Its RTP time comes from the publisher's own latest report: the
// publisher's wall clock and RTP clock, extrapolated to now at the codec's
// clock rate. A student's player aligns audio and video by these reports,
// so deriving both tracks' from the publisher's common clock keeps the
// teacher's lip sync whatever time each packet spent in this server's
// queues; the publisher's wall clock may differ from this server's, but
// the difference is the same for every track of the publisher and cancels
// out. While the publisher has sent no report, the RTP time is the newest
// frame's by this server's clock (Track.recvClock). A down track reports
// nothing before it has sent a packet (ok false).
func (d *DownTrack) senderReport(now time.Time) (sr *rtcp.SenderReport, ok bool) {
	b, c := d.binding.Load(), d.clock.Load()
	if b == nil || c == nil || d.closed.Load() {
		return nil, false
	}
	var rtpNow uint32
	if pubNTP, pubRTP, ok := c.track.SenderReport(); ok {
		rtpNow = pubRTP + uint32(int64(now.Sub(pubNTP).Seconds()*float64(c.track.codec.ClockRate)))
	} else if rtpNow, ok = c.track.recvClock(now); !ok {
		return nil, false
	}
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     timeToNTP(now),
		RTPTime:     rtpNow + c.tsOffset,
		PacketCount: uint32(d.sent.Load() + d.resent.Load()),
		OctetCount:  uint32(d.octets.Load()),
	}, true
}

// timeToNTP is t as a 64-bit NTP timestamp (RFC 3550 4).
func timeToNTP(t time.Time) uint64 {
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}
