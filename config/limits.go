package config

import (
	"net/netip"
	"strings"
	"time"
)

// Limits is the part of Config that bounds what one client, one token or
// one address can multiply (docs/protocol.md, "Limits"). It is inlined in
// Config: its keys are top-level keys like every other.
type Limits struct {
	// WHEPPerToken is how many WHEP sessions one token (one participant)
	// may hold at once.
	WHEPPerToken int `yaml:"whep_sessions_per_token"`
	// ChatRate is the chat messages per second one participant may
	// post, on average; ChatBurst how many it may post at once.
	ChatRate  int `yaml:"chat_rate"`
	ChatBurst int `yaml:"chat_burst"`
	// ClassChatRate is the chat messages per second a whole class's
	// students may post, on average (bursts of twice as many), however
	// many post.
	ClassChatRate int `yaml:"class_chat_rate"`
	// FloodCooldown is how long a participant closed for flooding (4008)
	// is refused before it may join again; 0 lets it rejoin at once.
	FloodCooldown time.Duration `yaml:"flood_cooldown"`
	// JoinRateInvite and JoinRateIP are how many invites may be exchanged
	// at /api/join per minute, per invite and per client address (bursts
	// of as many).
	JoinRateInvite int `yaml:"join_rate_invite"`
	JoinRateIP     int `yaml:"join_rate_ip"`
	// CheckRateIP is how many requests one client address may make to the
	// connection check's endpoints (/api/check…) per minute (bursts of
	// half as many).
	CheckRateIP int `yaml:"check_rate_ip"`
	// TrustedProxies are the addresses or CIDR prefixes of reverse
	// proxies whose X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// DefaultLimits is the limits part of Default.
func DefaultLimits() Limits {
	return Limits{
		WHEPPerToken:   3,
		ChatRate:       2,
		ChatBurst:      5,
		ClassChatRate:  20,
		FloodCooldown:  30 * time.Second,
		JoinRateInvite: 60,
		JoinRateIP:     600,
		CheckRateIP:    120,
	}
}

// TrustedPrefixes are TrustedProxies parsed; a bare address is a prefix
// of its full length. Entries that do not parse are left out (Validate
// reports them).
func (l Limits) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range l.TrustedProxies {
		if p, ok := parsePrefix(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
}

func (c *Config) limitsFields() []field {
	return []field{
		{"whep_sessions_per_token", "LECTERN_WHEP_SESSIONS_PER_TOKEN", "whep-sessions-per-token", "WHEP sessions one token may hold at once", intValue{&c.WHEPPerToken}},
		{"chat_rate", "LECTERN_CHAT_RATE", "chat-rate", "chat messages per second one participant may post on average", intValue{&c.ChatRate}},
		{"chat_burst", "LECTERN_CHAT_BURST", "chat-burst", "chat messages one participant may post at once", intValue{&c.ChatBurst}},
		{"class_chat_rate", "LECTERN_CLASS_CHAT_RATE", "class-chat-rate", "chat messages per second a whole class's students may post on average (bursts of twice as many)", intValue{&c.ClassChatRate}},
		{"flood_cooldown", "LECTERN_FLOOD_COOLDOWN", "flood-cooldown", "how long a participant closed for flooding (4008) must wait to join again (0: no wait)", durationValue{&c.FloodCooldown}},
		{"join_rate_invite", "LECTERN_JOIN_RATE_INVITE", "join-rate-invite", "invite exchanges at /api/join per minute per invite", intValue{&c.JoinRateInvite}},
		{"join_rate_ip", "LECTERN_JOIN_RATE_IP", "join-rate-ip", "invite exchanges at /api/join per minute per client address", intValue{&c.JoinRateIP}},
		{"check_rate_ip", "LECTERN_CHECK_RATE_IP", "check-rate-ip", "requests to the connection check's endpoints (/api/check...) per minute per client address", intValue{&c.CheckRateIP}},
		{"trusted_proxies", "LECTERN_TRUSTED_PROXIES", "trusted-proxies", "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (empty: none)", listValue{&c.TrustedProxies}},
	}
}

// validateLimits checks the limits.
func (c Config) validateLimits(bad func(format string, a ...any)) {
	l := c.Limits
	for _, r := range []struct {
		key      string
		v, lo, h int
	}{
		{"whep_sessions_per_token", l.WHEPPerToken, 1, 100},
		{"chat_rate", l.ChatRate, 1, 100},
		{"chat_burst", l.ChatBurst, 1, 1000},
		{"class_chat_rate", l.ClassChatRate, 1, 10000},
		{"join_rate_invite", l.JoinRateInvite, 1, 100000},
		{"join_rate_ip", l.JoinRateIP, 1, 100000},
		{"check_rate_ip", l.CheckRateIP, 2, 100000},
	} {
		if r.v < r.lo || r.v > r.h {
			bad("%s %d: want %d to %d", r.key, r.v, r.lo, r.h)
		}
	}
	if l.FloodCooldown < 0 || l.FloodCooldown > time.Hour {
		bad("flood_cooldown %v: want 0 to 1h", l.FloodCooldown)
	}
	for _, p := range l.TrustedProxies {
		if _, ok := parsePrefix(p); !ok {
			bad("trusted_proxies %q: want an IP address or a CIDR prefix such as 10.0.0.0/8", p)
		}
	}
}
