package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nbf (RFC 7519 section 4.1.5): a token is refused before it, accepted
// from it on, and ValidAt agrees with Verify.
func TestNotBefore(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	c := Claims{Room: "r", Role: RoleStudent, NotBefore: now.Unix() + 10}
	tok, err := s.Mint(c, time.Hour)
	require.NoError(t, err)
	_, err = s.Verify(tok)
	require.ErrorIs(t, err, ErrNotYetValid)

	now = now.Add(10 * time.Second)
	got, err := s.Verify(tok)
	require.NoError(t, err)
	require.True(t, got.ValidAt(now))
	require.False(t, got.ValidAt(now.Add(-time.Second)), "before nbf")
	require.False(t, got.ValidAt(time.Unix(got.Expiry, 0)), "at exp")
}
