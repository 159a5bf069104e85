package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/client"
)

const (
	// silence is how long a viewer waits without a packet before it asks
	// whether its node is still alive.
	silence = time.Second
	// gap is the pause in packets that counts as an interruption.
	gap = 300 * time.Millisecond
	// unaffectedAfter: a viewer that played on without a gap this long
	// after a kill was not affected by it.
	unaffectedAfter = 3 * time.Second
	maxHops         = 4
)

// httpClient follows no redirect by itself: a 307 to another node must
// carry the bearer token again, which net/http drops across hosts. It
// ignores proxy variables: every request goes to 127.0.0.1.
func httpClient() *http.Client {
	return &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
}

// post offers sdp to kind (whip or whep) on the first node of order that
// takes it, following 307s; it returns the answer and the node that
// holds the session.
func post(ctx context.Context, order []string, kind, room, token, sdp string) (answer, node string, err error) {
	var errs []error
	for _, base := range order {
		answer, node, err := postOne(ctx, base, kind, room, token, sdp)
		if err == nil {
			return answer, node, nil
		}
		errs = append(errs, err)
	}
	return "", "", errors.Join(errs...)
}

func postOne(ctx context.Context, base, kind, room, token, sdp string) (string, string, error) {
	target := strings.TrimRight(base, "/") + "/" + kind + "/" + url.PathEscape(room)
	via := ""
	for range maxHops {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(sdp))
		if err != nil {
			return "", "", err
		}
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient().Do(req)
		if err != nil {
			return "", "", fmt.Errorf("POST %s%s: %w", target, via, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
		_ = resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return string(body), origin(target), nil
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := resp.Location()
			if err != nil {
				return "", "", fmt.Errorf("POST %s: %s without Location", target, resp.Status)
			}
			via = fmt.Sprintf(" (%d from %s)", resp.StatusCode, origin(target))
			target = loc.String()
			continue
		}
		return "", "", fmt.Errorf("POST %s%s: %s: %s", target, via, resp.Status, strings.TrimSpace(string(body)))
	}
	return "", "", fmt.Errorf("POST %s: more than %d redirects", target, maxHops)
}

func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}

// healthy reports whether the node answers /healthz.
func healthy(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// others is nodes without dead, starting after it, so that a client
// moving away spreads over the survivors in order.
func others(nodes []string, dead string) []string {
	var out []string
	for i, n := range nodes {
		if n == dead {
			out = append(append(out, nodes[i+1:]...), nodes[:i]...)
			return out
		}
	}
	return nodes
}

// negotiate gathers every candidate (no trickle), posts the offer and
// applies the answer.
func negotiate(ctx context.Context, pc *webrtc.PeerConnection, order []string, kind, room, token string) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-gathered
	answer, node, err := post(ctx, order, kind, room, token, pc.LocalDescription().SDP)
	if err != nil {
		return "", err
	}
	return node, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// whipPublisher is the teacher, publishing the clip through WHIP.
type whipPublisher struct {
	api   *webrtc.API
	media *client.Publisher
	room  string
	token string
	pc    *webrtc.PeerConnection
	node  string
}

func (p *whipPublisher) connect(ctx context.Context, order []string) error {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	for _, t := range p.media.Tracks() {
		if _, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			_ = pc.Close()
			return err
		}
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	node, err := negotiate(ctx, pc, order, "whip", p.room, p.token)
	if err == nil {
		select {
		case <-connected:
		case <-time.After(10 * time.Second):
			err = errors.New("peer connection not connected after 10 s")
		}
	}
	if err != nil {
		_ = pc.Close()
		return err
	}
	p.close()
	p.pc, p.node = pc, node
	return nil
}

// recover notices that the publisher's node is gone (two failed health
// checks) and publishes on the other nodes until one takes it.
func (p *whipPublisher) recover(ctx context.Context, killed time.Time, nodes []string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	for fails := 0; fails < 2; {
		if healthy(ctx, p.node) {
			fails = 0
		} else {
			fails++
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, err
		}
	}
	dead := p.node
	say("publisher: node %s is gone, publishing elsewhere", dead)
	p.close()
	last := ""
	for attempt := 1; ; attempt++ {
		err := p.connect(ctx, others(nodes, dead))
		if err == nil {
			return time.Since(killed), nil
		}
		if msg := strings.ReplaceAll(err.Error(), "\n", "; "); msg != last {
			say("publisher: attempt %d: %s", attempt, msg)
			last = msg
		}
		if serr := sleep(ctx, 250*time.Millisecond); serr != nil {
			return 0, fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
	}
}

func (p *whipPublisher) close() {
	if p.pc != nil {
		_ = p.pc.Close()
		p.pc = nil
	}
}

// counts is what a viewer received.
type counts struct{ video, audio, bytes uint64 }

func (c counts) minus(o counts) counts {
	return counts{c.video - o.video, c.audio - o.audio, c.bytes - o.bytes}
}

// whepViewer is a student watching through WHEP.
type whepViewer struct {
	name  string
	api   *webrtc.API
	room  string
	token string
	pc    *webrtc.PeerConnection
	node  string

	video, audio, bytes atomic.Uint64
	last                atomic.Int64 // unix nanoseconds of the last packet
	resumed             atomic.Int64 // of the first packet after a gap
	readers             sync.WaitGroup
}

func (v *whepViewer) counts() counts {
	return counts{v.video.Load(), v.audio.Load(), v.bytes.Load()}
}

func (v *whepViewer) connect(ctx context.Context, order []string) error {
	pc, err := v.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return err
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.readers.Add(1)
		go v.read(t)
	})
	node, err := negotiate(ctx, pc, order, "whep", v.room, v.token)
	if err != nil {
		_ = pc.Close()
		return err
	}
	v.pc, v.node = pc, node
	return nil
}

// read counts one track's packets until its peer connection closes.
func (v *whepViewer) read(t *webrtc.TrackRemote) {
	defer v.readers.Done()
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if prev := v.last.Swap(now); now-prev > int64(gap) {
			v.resumed.Store(now)
		}
		v.bytes.Add(uint64(len(p.Payload)))
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			v.video.Add(1)
		} else {
			v.audio.Add(1)
		}
	}
}

// waitPacket waits for a packet received after since.
func (v *whepViewer) waitPacket(ctx context.Context, since time.Time, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if l := v.last.Load(); l > since.UnixNano() {
			return time.Unix(0, l), nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// recover waits until the viewer plays again after a kill: packets after a
// gap, on the same node or, when its node stopped answering, on another
// one it posted to. A viewer that never paused was not affected (0).
func (v *whepViewer) recover(ctx context.Context, killed time.Time, nodes []string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	for {
		now := time.Now()
		last := time.Unix(0, v.last.Load())
		if r := v.resumed.Load(); r > killed.UnixNano() {
			return time.Unix(0, r).Sub(killed), nil
		}
		if now.Sub(killed) > unaffectedAfter && now.Sub(last) < gap {
			return 0, nil
		}
		if now.Sub(last) > silence && !healthy(ctx, v.node) {
			dead := v.node
			say("%s: no media for %v and node %s is gone: posting to the others", v.name, silence, dead)
			v.close()
			if err := v.connect(ctx, others(nodes, dead)); err != nil {
				say("%s: %v", v.name, err)
				v.node = dead // check again, and try again
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, fmt.Errorf("%w: no media since %v after the kill", err, last.Sub(killed).Round(time.Millisecond))
		}
	}
}

func (v *whepViewer) close() {
	if v.pc != nil {
		_ = v.pc.Close()
		v.pc = nil
	}
	v.readers.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
