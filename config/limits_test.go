package config

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimitsSettings(t *testing.T) {
	t.Parallel()
	def := DefaultLimits()
	with := func(edit func(*Limits)) Limits {
		l := def
		edit(&l)
		return l
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want Limits
	}{
		{"defaults", nil, nil, def},
		{"flags", []string{"--whep-sessions-per-token", "1", "--chat-rate", "4", "--flood-cooldown", "0s",
			"--trusted-proxies", "127.0.0.1, 10.0.0.0/8"}, nil, with(func(l *Limits) {
			l.WHEPPerToken, l.ChatRate, l.FloodCooldown = 1, 4, 0
			l.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8"}
		})},
		{"env", nil, []string{"LECTERN_JOIN_RATE_INVITE=10", "LECTERN_CLASS_CHAT_RATE=50", "LECTERN_CHECK_RATE_IP=40"},
			with(func(l *Limits) { l.JoinRateInvite, l.ClassChatRate, l.CheckRateIP = 10, 50, 40 })},
		{"yaml", []string{"--config", writeFile(t, "chat_burst: 9\njoin_rate_ip: 30\ntrusted_proxies: [\"::1\"]\n")}, nil,
			with(func(l *Limits) { l.ChatBurst, l.JoinRateIP, l.TrustedProxies = 9, 30, []string{"::1"} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, EnvList(tt.env))
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Limits)
		})
	}
}

func TestLimitsErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--whep-sessions-per-token", "0"},
		{"--chat-rate", "0"},
		{"--chat-burst", "-1"},
		{"--class-chat-rate", "100000"},
		{"--flood-cooldown", "-1s"},
		{"--flood-cooldown", "2h"},
		{"--join-rate-invite", "0"},
		{"--check-rate-ip", "1"},
		{"--check-rate-ip", "100001"},
		{"--trusted-proxies", "proxy.example"},
		{"--trusted-proxies", "10.0.0.0/33"},
	} {
		_, err := Load(args, nil)
		require.ErrorIs(t, err, ErrInvalid, "%v", args)
	}
}

func TestTrustedPrefixes(t *testing.T) {
	t.Parallel()
	l := Limits{TrustedProxies: []string{"127.0.0.1", "10.1.2.3/8", "::ffff:192.0.2.1", "2001:db8::/32"}}
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::/32"),
	}, l.TrustedPrefixes())
	require.Equal(t, 30*time.Second, DefaultLimits().FloodCooldown)
}
