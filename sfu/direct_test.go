package sfu

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// TestDirectOutSealsInPlace: packets written the direct way reach the
// student's socket sealed with the keys of the handshake, for both SRTP
// profiles, across a sequence number wrap, and open to the same header
// and payload.
func TestDirectOutSealsInPlace(t *testing.T) {
	t.Parallel()
	for _, c := range srtpProfiles() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o, student, client := directPair(t, c.dtls)
			_, open := clientContexts(t, client, c.srtp)

			buf := make([]byte, 2000)
			for i, seq := 0, uint16(65533); i < 6; i, seq = i+1, seq+1 {
				h := rtp.Header{Version: 2, Marker: i%2 == 0, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(i * 3000), SSRC: 42}
				payload := make([]byte, 1100+i)
				for j := range payload {
					payload[j] = byte(i + j)
				}
				done, err := o.write(&h, payload)
				require.True(t, done)
				require.NoError(t, err)
				require.NoError(t, student.SetReadDeadline(time.Now().Add(waitFor)))
				n, err := student.Read(buf)
				require.NoError(t, err)
				var got rtp.Header
				plain, err := open.DecryptRTP(nil, buf[:n], &got)
				require.NoError(t, err, "packet %d", i)
				require.Equal(t, seq, got.SequenceNumber)
				require.Equal(t, h.Marker, got.Marker)
				require.Equal(t, payload, plain[got.MarshalSize():])
			}
			require.Equal(t, uint64(6), o.sent.Load())
		})
	}
}

// directPair is a directOut whose keys come from a real handshake and
// whose address is a loopback socket standing for the student.
func directPair(t testing.TB, profile dtls.SRTPProtectionProfile) (*directOut, *net.UDPConn, dtls.State) {
	t.Helper()
	server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	conn := newBatchConn(server)
	t.Cleanup(func() { _ = conn.Close() })
	student, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = student.Close() })

	o := newDirectOut(conn, &rtcpTaps{}, &counters{}, zerolog.Nop())
	_, client := dtlsHandshake(t, o.keys, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, profile)
	out, in, err := o.keys.contexts(srtp.SRTCPReplayProtection(srtcpReplayWindow))
	require.NoError(t, err)
	ap := student.LocalAddr().(*net.UDPAddr).AddrPort()
	o.addr.Store(&ap)
	o.ctx, o.in = out, in
	o.direct.Store(true)
	return o, student, client
}

// TestDirectOutStopsAtClose: once a direct connection is closed nothing
// more is sealed or sent, nor does anything fall back to pion's way.
func TestDirectOutStopsAtClose(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 30, true)
	video, _ := tp.waitTracks()
	s := startSubscriber(t, e, []*Track{video}, true)
	require.Eventually(t, func() bool {
		tp.sendVideo()
		return len(s.packets(webrtc.RTPCodecTypeVideo)) > 0
	}, waitFor, tick)
	require.True(t, s.sub.out.direct.Load())
	require.NoError(t, s.sub.Close())
	sent := s.sub.out.sent.Load()
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, SSRC: 1}
	done, err := s.sub.out.write(&h, []byte{1, 2, 3})
	require.True(t, done, "a closed direct connection fell back to pion")
	require.ErrorIs(t, err, errNoPath)
	require.Equal(t, sent, s.sub.out.sent.Load())
	require.Equal(t, uint64(1), s.sub.out.dropped.Load())
}

// TestDirectPairLeavingUDPCloses: a direct connection whose selected pair
// leaves UDP cannot hand its SSRCs to pion (each would keep its own
// rollover counter), so it is closed, and its owner told, for the client
// to reconnect.
func TestDirectPairLeavingUDPCloses(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 30, true)
	video, _ := tp.waitTracks()
	closed := make(chan struct{})
	s := startSubscriberWith(t, e, []*Track{video}, true, SubscriberConfig{OnClose: func() { close(closed) }})
	require.Eventually(t, func() bool {
		tp.sendVideo()
		return len(s.packets(webrtc.RTPCodecTypeVideo)) > 0
	}, waitFor, tick)
	require.True(t, s.sub.out.direct.Load())

	tcp := &webrtc.ICECandidatePair{
		Local:  &webrtc.ICECandidate{Protocol: webrtc.ICEProtocolTCP, Address: "127.0.0.1", Port: 1},
		Remote: &webrtc.ICECandidate{Protocol: webrtc.ICEProtocolTCP, Address: "127.0.0.1", Port: 2},
	}
	s.sub.out.onPair(tcp)
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("the subscriber was not closed")
	}
	s.sub.out.taps.mu.RLock()
	defer s.sub.out.taps.mu.RUnlock()
	require.Empty(t, s.sub.out.taps.m, "a closed connection is still filed for RTCP")
}

// TestViewerDTLSRole: the engine answers a WHEP offer as the DTLS server
// (passive), which lets media go the direct way; an offer that takes the
// server's role itself gets an active answer, and media goes through
// pion, RTCP readers included.
func TestViewerDTLSRole(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	tp := startPublisher(t, e, 30, true)
	video, audio := tp.waitTracks()
	cases := []struct {
		name   string
		edit   func(string) string
		setup  string
		direct bool
	}{
		{"actpass", func(s string) string { return s }, "a=setup:passive", true},
		{"passive", func(s string) string { return strings.ReplaceAll(s, "a=setup:actpass", "a=setup:passive") }, "a=setup:active", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tv, answer := startViewerWith(t, e, c.edit)
			require.Contains(t, answer, c.setup)
			require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeVideo, video))
			require.NoError(t, tv.v.SetSource(webrtc.RTPCodecTypeAudio, audio))
			require.Eventually(t, func() bool {
				tp.sendVideo()
				tp.sendAudio()
				return len(tv.packets(webrtc.RTPCodecTypeVideo)) > 3 && len(tv.packets(webrtc.RTPCodecTypeAudio)) > 3
			}, waitFor, tick)
			tv.v.mu.Lock()
			reading := tv.v.reading
			tv.v.mu.Unlock()
			requireDirect(t, tv.v.out, reading, c.direct)
		})
	}
}

// TestTapTakesOnlyFiledRTCP: the socket's reader takes RTCP from a filed
// address only; RTP, DTLS, STUN and strangers' RTCP go on to pion.
func TestTapTakesOnlyFiledRTCP(t *testing.T) {
	t.Parallel()
	o, _, client := directPair(t, dtls.SRTP_AEAD_AES_128_GCM)
	seal, _ := clientContexts(t, client, srtp.ProtectionProfileAeadAes128Gcm)
	rr, err := (&rtcp.ReceiverReport{SSRC: 9}).Marshal()
	require.NoError(t, err)
	sealed, err := seal.EncryptRTCP(nil, rr, nil)
	require.NoError(t, err)
	filed := netip.MustParseAddrPort("127.0.0.1:5000")
	o.taps.add(filed, o)
	other := netip.MustParseAddrPort("127.0.0.1:5001")
	rtcpish := []byte{0x80, 201, 0, 1, 0, 0, 0, 9}
	cases := []struct {
		name string
		b    []byte
		from netip.AddrPort
		take bool
	}{
		{"RTP", []byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9}, filed, false},
		{"DTLS", []byte{22, 254, 253, 0, 0, 0, 0, 0}, filed, false},
		{"STUN", []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, filed, false},
		{"stranger's RTCP", rtcpish, other, false},
		// Filed but not sealed with the connection's keys: left to pion.
		{"RTCP failing authentication", append(rtcpish, make([]byte, 20)...), filed, false},
		{"runt", []byte{0x80, 201}, filed, false},
	}
	for _, c := range cases {
		require.Equal(t, c.take, o.taps.tap(c.b, c.from), c.name)
	}
	require.Zero(t, o.received.Load())
	require.True(t, o.taps.tap(sealed, filed), "the connection's own RTCP")
	require.Equal(t, uint64(1), o.received.Load())
	// A replay of it is taken and dropped, not handed on (RFC 3711 3.3.2).
	require.True(t, o.taps.tap(sealed, filed))
	require.Equal(t, uint64(1), o.received.Load())
}

// TestDirectOutAllocs: sealing a packet into the shared socket's batch
// and sending it allocate nothing once the pool is warm.
func TestDirectOutAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	o, student, _ := directPair(t, dtls.SRTP_AEAD_AES_128_GCM)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42}
	payload := make([]byte, 1200)
	buf := make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		h.SequenceNumber++
		if _, err := o.write(&h, payload); err != nil {
			t.Fatal(err)
		}
		_, _, _ = student.ReadFromUDPAddrPort(buf)
	})
	require.Zero(t, allocs)
}

// BenchmarkDirectWrite: one packet sealed (AES-GCM) and queued the direct
// way, sent by sendmmsg(2) in batches of 64 over loopback.
func BenchmarkDirectWrite(b *testing.B) {
	o, student, _ := directPair(b, dtls.SRTP_AEAD_AES_128_GCM)
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, err := student.Read(buf); err != nil {
				return
			}
		}
	}()
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42}
	payload := make([]byte, 1200)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for i := 0; i < b.N; i++ {
		if i%batchMax == 0 {
			o.conn.hold()
		}
		h.SequenceNumber++
		if _, err := o.write(&h, payload); err != nil {
			b.Fatal(err)
		}
		if i%batchMax == batchMax-1 {
			o.conn.release()
		}
	}
	if b.N%batchMax != 0 {
		o.conn.release()
	}
}

// TestTapDoesNotWaitForThePublisher: a student's PLI read off the shared
// socket asks the teacher for a keyframe without the socket's reader
// waiting for the teacher's connection (over ICE-TCP its write waits for
// the TCP window): every publisher's media comes through that reader.
func TestTapDoesNotWaitForThePublisher(t *testing.T) {
	t.Parallel()
	o, _, client := directPair(t, dtls.SRTP_AEAD_AES_128_GCM)
	seal, _ := clientContexts(t, client, srtp.ProtectionProfileAeadAes128Gcm)
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	sending, unblock := make(chan struct{}, 1), make(chan struct{})
	defer close(unblock)
	tt.rtcp = func([]rtcp.Packet) error {
		sending <- struct{}{}
		<-unblock // the teacher's TCP window stays full
		return nil
	}
	d := startDownTrack(t, tt, &recordingWriter{}, 7)
	o.downs = []*DownTrack{d}
	filed := netip.MustParseAddrPort("127.0.0.1:5000")
	o.taps.add(filed, o)
	pli, err := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 7}).Marshal()
	require.NoError(t, err)
	sealed, err := seal.EncryptRTCP(nil, pli, nil)
	require.NoError(t, err)

	taken := make(chan bool)
	go func() { taken <- o.taps.tap(sealed, filed) }()
	select {
	case ok := <-taken:
		require.True(t, ok)
	case <-time.After(waitFor):
		t.Fatal("the socket's reader waits for the teacher's connection")
	}
	select {
	case <-sending:
	case <-time.After(waitFor):
		t.Fatal("no PLI sent to the teacher")
	}
}

// TestFIRForAnotherStream: a FIR (RFC 5104 4.3.1) asks only the media
// senders its entries name.
func TestFIRForAnotherStream(t *testing.T) {
	t.Parallel()
	tt := newTestTrack(webrtc.RTPCodecTypeVideo)
	defer tt.stop()
	d := startDownTrack(t, tt, &recordingWriter{}, 7)
	d.handleRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 8, SequenceNumber: 1}}}})
	requirePLIs(t, tt, 0, "a FIR for another stream")
	d.handleRTCP([]rtcp.Packet{&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 8}, {SSRC: 7, SequenceNumber: 1}}}})
	requirePLIs(t, tt, 1, "a FIR naming this stream")
}
