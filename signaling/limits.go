package signaling

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"lectern/sfu"
)

// Limits bound what one client, token or address can multiply
// (docs/protocol.md, "Limits"). A zero field takes its default.
type Limits struct {
	// WHEPPerToken is how many WHEP sessions one participant may hold.
	WHEPPerToken int
	// ChatRate (messages per second) and ChatBurst bound one
	// participant's chat.
	ChatRate  float64
	ChatBurst int
	// ClassChatRate bounds a whole class's student chat, in bursts of
	// twice as many.
	ClassChatRate float64
	// FloodCooldown is how long a participant closed with 4008 is refused.
	FloodCooldown time.Duration
	// NoFloodCooldown lets a flooder rejoin at once (FloodCooldown 0
	// means the default).
	NoFloodCooldown bool
	// JoinRateInvite and JoinRateIP are invite exchanges per minute, per
	// invite and per client address.
	JoinRateInvite, JoinRateIP float64
	// CheckRateIP is requests per minute one client address may make to
	// the connectivity check's endpoints (/api/check…), in bursts of half
	// as many.
	CheckRateIP float64
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.WHEPPerToken <= 0 {
		l.WHEPPerToken = 3
	}
	if l.ChatBurst <= 0 {
		l.ChatBurst = 5
	}
	def(&l.ChatRate, 2)
	def(&l.ClassChatRate, 20)
	def(&l.JoinRateInvite, 60)
	def(&l.JoinRateIP, 600)
	def(&l.CheckRateIP, 120)
	if l.FloodCooldown <= 0 && !l.NoFloodCooldown {
		l.FloodCooldown = 30 * time.Second
	}
	return l
}

// joinLimiters are the /api/join limiters, per invite and per address:
// rates per minute, bursts of a minute's worth.
func (l Limits) joinLimiters() (perInvite, perAddr *limiter) {
	return newLimiter(l.JoinRateInvite/60, int(l.JoinRateInvite), maxLimiterKeys),
		newLimiter(l.JoinRateIP/60, int(l.JoinRateIP), maxLimiterKeys)
}

// allowOrRetry spends a token of key in l, or returns err saying when
// to retry.
func allowOrRetry(l *limiter, key string, err error) error {
	if ok, wait := l.allow(key, time.Now()); !ok {
		return retryAfter(err, wait)
	}
	return nil
}

// bucket is a token bucket (rate tokens a second, at most burst); the
// zero bucket is full.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token, or reports how long until one is there.
func (b *bucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// full reports whether the bucket has refilled, so forgetting it changes
// nothing.
func (b *bucket) full(now time.Time, rate float64, burst int) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= float64(burst)
}

// maxLimiterKeys bounds a limiter's memory (about 100 bytes a key).
const maxLimiterKeys = 100_000

// limiter is a token bucket per key (an invite, an address, a
// participant), in bounded memory.
type limiter struct {
	rate  float64 // tokens per second
	burst int
	max   int

	mu sync.Mutex // leaf
	m  map[string]*bucket
}

func newLimiter(rate float64, burst, maxKeys int) *limiter {
	return &limiter{rate: rate, burst: max(burst, 1), max: maxKeys, m: map[string]*bucket{}}
}

// allow spends a token of key's bucket, or says how long to wait. When
// the table is full even of buckets still in use, a new key waits.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.max {
			l.pruneLocked(now)
		}
		if len(l.m) >= l.max {
			return false, time.Duration(float64(time.Second) / l.rate)
		}
		b = &bucket{}
		l.m[key] = b
	}
	return b.take(now, l.rate, l.burst)
}

// pruneLocked forgets the buckets that have refilled.
func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.m {
		if b.full(now, l.rate, l.burst) {
			delete(l.m, k)
		}
	}
}

// cooldowns remembers participants closed for flooding, until a time.
// Its mutex is a leaf.
type cooldowns struct {
	mu sync.Mutex
	m  map[sfu.ParticipantID]time.Time
}

// add refuses p until now+d; expired entries are forgotten on the way,
// which bounds the table by the floods of the last d.
func (c *cooldowns) add(p sfu.ParticipantID, d time.Duration) {
	if d <= 0 || p == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.m == nil {
		c.m = map[sfu.ParticipantID]time.Time{}
	}
	for k, until := range c.m {
		if !now.Before(until) {
			delete(c.m, k)
		}
	}
	c.m[p] = now.Add(d)
}

// wait is how long p is still refused (0: not).
func (c *cooldowns) wait(p sfu.ParticipantID) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(0, time.Until(c.m[p]))
}

// clientAddr is the address a request comes from: the peer, or, when the
// peer is a trusted proxy, the last address X-Forwarded-For names that
// is not itself a trusted proxy (the proxies append; the client's own
// entries could be forged).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer := remoteAddr(r)
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer
		}
		if a = a.Unmap(); !s.trusted(a) {
			return a
		}
	}
	return peer
}

// remoteAddr is the request's TCP peer address.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// trusted reports whether a is one of Options.TrustedProxies.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrKey is the rate limit key of an address: IPv6 clients by their
// /64, which one subscriber usually holds whole.
func addrKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// httpsRequest reports whether the client reached Lectern over HTTPS:
// TLS terminated here, a public_url of https, or X-Forwarded-Proto
// https from a trusted proxy.
func (s *Server) httpsRequest(r *http.Request) bool {
	if r.TLS != nil || strings.HasPrefix(strings.ToLower(s.opts.PublicURL), "https://") {
		return true
	}
	if !s.trusted(remoteAddr(r)) {
		return false
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}
