package sfu

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// TestSenderReportMapping: a down track's report carries the publisher's
// RTP clock extrapolated to the report's time, plus the down track's
// timestamp offset, whatever the publisher's wall clock says.
func TestSenderReportMapping(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		kind     webrtc.RTPCodecType
		pubAt    time.Time // the publisher's wall clock in its last report
		pubRTP   uint32
		tsOffset uint32
		want     uint32
	}{
		{"video, a second later", webrtc.RTPCodecTypeVideo, now.Add(-time.Second), 1000, 0, 91000},
		{"audio, half a second later", webrtc.RTPCodecTypeAudio, now.Add(-500 * time.Millisecond), 1000, 0, 25000},
		{"after a source switch", webrtc.RTPCodecTypeVideo, now.Add(-time.Second), 1000, 500, 91500},
		{"the publisher's clock ahead", webrtc.RTPCodecTypeVideo, now.Add(time.Second), 100000, 0, 10000},
		{"RTP time wraps", webrtc.RTPCodecTypeVideo, now.Add(-time.Second), 0xffffffff - 9, 0, 89990},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := newTestTrack(tc.kind)
			defer tt.stop()
			d := newDownTrack(tt.Track, tt.stats, zerolog.Nop())
			d.binding.Store(&binding{id: "b", ssrc: 77, pt: 96, w: &recordingWriter{}})
			_, ok := d.senderReport(now)
			require.False(t, ok, "nothing sent yet")
			d.clock.Store(&outClock{track: tt.Track, tsOffset: tc.tsOffset})
			_, ok = d.senderReport(now)
			require.False(t, ok, "no report from the publisher yet")
			tt.setSenderReport(&rtcp.SenderReport{SSRC: tt.ssrc, NTPTime: timeToNTP(tc.pubAt), RTPTime: tc.pubRTP})
			d.sent.Store(10)
			d.resent.Store(2)
			d.octets.Store(12000)
			sr, ok := d.senderReport(now)
			require.True(t, ok)
			require.Equal(t, uint32(77), sr.SSRC)
			require.Equal(t, tc.want, sr.RTPTime)
			require.True(t, now.Equal(ntpToTime(sr.NTPTime)), "NTP time is the report's")
			require.Equal(t, uint32(12), sr.PacketCount, "retransmissions are packets sent too")
			require.Equal(t, uint32(12000), sr.OctetCount)
		})
	}
}

// TestSenderReportsReachSubscribers: once the publisher has reported its
// clocks, each student receives sender reports for its audio and video
// that map RTP time to wall clock as the publisher's do, so its player
// can align the two.
func TestSenderReportsReachSubscribers(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	// The publisher sends no reports of its own (pion's report
	// interceptor would, from its own clocks): the test's are the only ones.
	tp := startPublisherWith(t, e, quietClientAPI(t), 30, true)
	video, audio := tp.waitTracks()
	s := startSubscriber(t, e, []*Track{video, audio}, true)
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		return len(s.packets(webrtc.RTPCodecTypeVideo)) > 0 && len(s.packets(webrtc.RTPCodecTypeAudio)) > 0
	}, waitFor, tick)

	// The publisher's wall clock is its own: here three seconds behind.
	pubAt := time.Now().Add(-3 * time.Second)
	pubRTP := map[*Track]uint32{video: 123456, audio: 7890}
	require.NoError(t, tp.pc.WriteRTCP([]rtcp.Packet{
		&rtcp.SenderReport{SSRC: video.ssrc, NTPTime: timeToNTP(pubAt), RTPTime: pubRTP[video]},
		&rtcp.SenderReport{SSRC: audio.ssrc, NTPTime: timeToNTP(pubAt), RTPTime: pubRTP[audio]},
	}))
	kinds := map[*Track]webrtc.RTPCodecType{video: webrtc.RTPCodecTypeVideo, audio: webrtc.RTPCodecTypeAudio}
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		return video.sr.Load() != nil && audio.sr.Load() != nil
	}, waitFor, tick, "the engine never read the publisher's reports")
	sentAt := time.Now() // every report from now on comes from the test's
	made := func(kind webrtc.RTPCodecType) bool {
		srs := s.reports(kind)
		return len(srs) > 0 && ntpToTime(srs[len(srs)-1].NTPTime).After(sentAt)
	}
	require.Eventually(t, func() bool {
		tp.sendVideo()
		tp.sendAudio()
		return made(webrtc.RTPCodecTypeVideo) && made(webrtc.RTPCodecTypeAudio)
	}, 3*reportInterval+waitFor, 20*time.Millisecond)
	for tr, kind := range kinds {
		srs := s.reports(kind)
		sr := srs[len(srs)-1]
		at := ntpToTime(sr.NTPTime)
		want := pubRTP[tr] + uint32(int64(at.Sub(pubAt).Seconds()*float64(tr.codec.ClockRate)))
		require.InDelta(t, 0, int32(sr.RTPTime-want), 2, "%s: RTP time from the publisher's clock", kind)
		require.WithinDuration(t, time.Now(), at, 5*time.Second)
		require.Positive(t, sr.PacketCount)
		require.Positive(t, sr.OctetCount)
	}
}

// stuckReporter is a peer whose report write waits, as a write to a
// student connected over ICE-TCP (RFC 6544) does while the student's TCP
// window is closed, until the peer is closed.
type stuckReporter struct {
	entered chan struct{}
	unblock chan struct{}
	once    sync.Once
}

func (r *stuckReporter) sendReports(time.Time) {
	select {
	case r.entered <- struct{}{}:
	default:
	}
	<-r.unblock
}

func (r *stuckReporter) overTCP() bool { return true }

func (r *stuckReporter) Close() error {
	r.once.Do(func() { close(r.unblock) })
	return nil
}

// TestReportsWaitingOnTCPHoldNoOne: while one student's sender report
// waits for its TCP window, what other goroutines write on the shared UDP
// socket (ICE checks, DTLS, RTCP of every other peer) still leaves.
func TestReportsWaitingOnTCPHoldNoOne(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	stuck := &stuckReporter{entered: make(chan struct{}, 1), unblock: make(chan struct{})}
	require.NoError(t, e.register(stuck))
	select {
	case <-stuck.entered:
	case <-time.After(3 * reportInterval):
		t.Fatal("no report tick")
	}

	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer dst.Close()
	_, err = e.udpConn.WriteToAddrPort([]byte("binding response"), dst.LocalAddr().(*net.UDPAddr).AddrPort())
	require.NoError(t, err)
	require.NoError(t, dst.SetReadDeadline(time.Now().Add(time.Second)))
	buf := make([]byte, 64)
	n, err := dst.Read(buf)
	require.NoError(t, err, "the datagram waited for the stuck report")
	require.Equal(t, "binding response", string(buf[:n]))
}

// TestSenderReportFromArrival: while the publisher has sent no report, a
// down track's report maps RTP time to this server's clock by the newest
// frame's arrival, so a student still gets reports to align tracks by.
func TestSenderReportFromArrival(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	d := newDownTrack(tt.Track, tt.stats, zerolog.Nop())
	d.binding.Store(&binding{id: "b", ssrc: 9, pt: 96, w: &recordingWriter{}})
	d.clock.Store(&outClock{track: tt.Track, tsOffset: 1000})
	_, ok := d.senderReport(time.Now())
	require.False(t, ok, "nothing received yet")

	tt.idx = 10 // timestamp 30000
	arrived := time.Now()
	tt.feed(t, 1, 100)
	tt.feed(t, 0, 100)
	later := arrived.Add(500 * time.Millisecond)
	sr, ok := d.senderReport(later)
	require.True(t, ok)
	want := uint32(30000 + 1000 + 45000) // the frame, the offset, half a second at 90 kHz
	require.InDelta(t, 0, int32(sr.RTPTime-want), 90*5, "within 5 ms of the arrival")
	require.WithinDuration(t, later, ntpToTime(sr.NTPTime), time.Microsecond)
}
