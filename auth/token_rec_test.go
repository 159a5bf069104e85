package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReplayClaims(t *testing.T) {
	t.Parallel()
	s, err := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	cases := []struct {
		name string
		c    Claims
		ok   bool
	}{
		{"student replay", Claims{Room: "r", Role: RoleStudent, Recording: "abc"}, true},
		{"teacher replay", Claims{Room: "r", Role: RoleTeacher, Recording: "abc"}, false},
		{"operator replay", Claims{Room: "*", Role: RoleOperator, Recording: "abc"}, false},
		{"invite replay", Claims{Room: "r", Role: RoleStudent, Invite: true, Recording: "abc"}, false},
		{"long id", Claims{Room: "r", Role: RoleStudent, Recording: string(make([]byte, 65))}, false},
		{"class token", Claims{Room: "r", Role: RoleStudent}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Mint(tc.c, time.Minute)
			if !tc.ok {
				require.ErrorIs(t, err, ErrClaims)
				return
			}
			require.NoError(t, err)
			got, err := s.Verify(tok)
			require.NoError(t, err)
			require.Equal(t, tc.c.Recording, got.Recording)
			require.Equal(t, tc.c.Recording != "", got.Replay())
		})
	}
}
