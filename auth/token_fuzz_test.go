package auth

import (
	"strings"
	"testing"
	"time"
)

// fuzzSecret signs the seed tokens in testdata/fuzz: they verify, so the
// fuzzer starts from tokens that pass the signature check.
const fuzzSecret = "fuzz-secret-0123456789abcdef-0123456789"

// fuzzNow is the clock of the fuzz targets: the seed tokens were minted
// at 2026-12-08 03:30 UTC for 3 h, so they verify at this instant for good.
var fuzzNow = time.Date(2026, 12, 8, 4, 0, 0, 0, time.UTC)

func fuzzSigner(tb testing.TB) *Signer {
	tb.Helper()
	s, err := NewSigner([]byte(fuzzSecret))
	if err != nil {
		tb.Fatal(err)
	}
	s.now = func() time.Time { return fuzzNow }
	return s
}

// FuzzVerify: Verify never panics on any string; what it accepts has
// valid claims, and minting those claims again gives a token that
// verifies to the same claims (RFC 7519 7.2).
func FuzzVerify(f *testing.F) {
	s := fuzzSigner(f)
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err != nil {
			if c != (Claims{}) {
				t.Fatalf("refused token %q returned claims %+v", token, c)
			}
			return
		}
		if !c.Valid() || c.Expiry <= fuzzNow.Unix() {
			t.Fatalf("accepted claims %+v are not valid now", c)
		}
		ttl := time.Unix(c.Expiry, 0).Sub(fuzzNow)
		again, err := s.Mint(c, ttl)
		if err != nil {
			t.Fatalf("claims %+v of an accepted token do not mint: %v", c, err)
		}
		got, err := s.Verify(again)
		if err != nil {
			t.Fatalf("re-minted token does not verify: %v", err)
		}
		c.IssuedAt = got.IssuedAt
		if got != c {
			t.Fatalf("claims changed on the way: %+v, then %+v", c, got)
		}
	})
}

// FuzzTokenRoundTrip: any claims Mint accepts come back from Verify
// exactly, and a token changed in any one byte is refused.
func FuzzTokenRoundTrip(f *testing.F) {
	s := fuzzSigner(f)
	f.Fuzz(func(t *testing.T, room, role, name, title, sub, rec string, inv bool, at uint16, xor byte) {
		c := Claims{Room: room, Role: Role(role), Name: name, Title: title, Participant: sub, Recording: rec, Invite: inv}
		tok, err := s.Mint(c, time.Hour)
		if err != nil {
			return
		}
		got, err := s.Verify(tok)
		if err != nil {
			t.Fatalf("minted token for %+v does not verify: %v", c, err)
		}
		if c.Participant == "" {
			c.Participant = got.Participant // Mint draws one
		}
		c.IssuedAt, c.Expiry = fuzzNow.Unix(), fuzzNow.Add(time.Hour).Unix()
		if got != c {
			t.Fatalf("claims changed on the way: minted %+v, verified %+v", c, got)
		}
		if xor == 0 {
			xor = 1
		}
		i := int(at) % len(tok)
		tampered := tok[:i] + string([]byte{tok[i] ^ xor}) + tok[i+1:]
		if tc, err := s.Verify(tampered); err == nil {
			t.Fatalf("token changed at byte %d (%q for %q) verifies: %+v",
				i, tampered[i], tok[i], tc)
		}
		if _, err := s.Verify(strings.Replace(tok, ".", "", 1)); err == nil {
			t.Fatal("a token without its first dot verifies")
		}
	})
}
