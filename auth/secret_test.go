package auth

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateSecretCreates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "secret")

	secret, err := LoadOrCreateSecret(path)
	require.NoError(t, err)
	require.Len(t, secret, 64)
	raw, err := hex.DecodeString(string(secret))
	require.NoError(t, err)
	require.Len(t, raw, 32)

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dst, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dst.Mode().Perm())

	// No temporary file is left next to it.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)

	again, err := LoadOrCreateSecret(path)
	require.NoError(t, err)
	require.Equal(t, secret, again)

	// The secret signs: a token minted under it verifies under the reloaded one.
	s1, err := NewSigner(secret)
	require.NoError(t, err)
	s2, err := NewSigner(again)
	require.NoError(t, err)
	tok, err := s1.Mint(Claims{Room: "r", Role: RoleTeacher}, time.Minute)
	require.NoError(t, err)
	_, err = s2.Verify(tok)
	require.NoError(t, err)
}

func TestLoadOrCreateSecretFreshEachPlace(t *testing.T) {
	t.Parallel()
	a, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "secret"))
	require.NoError(t, err)
	b, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "secret"))
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestLoadOrCreateSecretReadsExisting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string // "" means an ErrSecret error
	}{
		{"hex with newline", strings.Repeat("ab", 32) + "\n", strings.Repeat("ab", 32)},
		{"any text of 32 bytes", "  " + strings.Repeat("k", 32) + "  \n", strings.Repeat("k", 32)},
		{"too short", strings.Repeat("a", 31) + "\n", ""},
		{"empty", "", ""},
		{"only whitespace", strings.Repeat(" \n", 40), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "secret")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			got, err := LoadOrCreateSecret(path)
			if tt.want == "" {
				require.ErrorIs(t, err, ErrSecret)
				require.Nil(t, got)
				// A refused file is left alone, never replaced.
				b, rerr := os.ReadFile(path)
				require.NoError(t, rerr)
				require.Equal(t, tt.content, string(b))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secret")
	const n = 8
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = LoadOrCreateSecret(path)
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, got[0], got[i], "every caller sees the one secret that won")
	}
}

func TestLoadOrCreateSecretErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The path is a directory: reading fails with something other than
	// "does not exist", which must not be papered over by creating one.
	_, err := LoadOrCreateSecret(dir)
	require.Error(t, err)

	// The parent is a file: the directory cannot be made.
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	_, err = LoadOrCreateSecret(filepath.Join(file, "secret"))
	require.Error(t, err)
}
