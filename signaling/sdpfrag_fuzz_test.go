package signaling

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/ice/v4"
)

// FuzzSDPFrag feeds trickle ICE PATCH bodies (RFC 8840) to parseSDPFrag,
// and the candidates it finds to pion's candidate parser, which
// Publisher.AddICECandidate hands them to. Nothing panics; a refusal is
// ErrBadSDP (a 400); each candidate found is one of the body's lines,
// filed under a media section of the body. Seeds: fragments of real
// pion candidates and credentials, an ICE restart.
func FuzzSDPFrag(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > maxFragBytes {
			return // readBody refuses it first (413)
		}
		frag, err := parseSDPFrag(body)
		if err != nil {
			if !errors.Is(err, ErrBadSDP) {
				t.Fatalf("refusal %v is not ErrBadSDP", err)
			}
			return
		}
		if frag.ufrag == "" && frag.pwd == "" && len(frag.cands) == 0 {
			t.Fatal("an empty fragment was accepted")
		}
		sections := strings.Count("\n"+body, "\nm=")
		for _, c := range frag.cands {
			if !strings.HasPrefix(c.Candidate, "candidate:") || !strings.Contains(body, "a="+c.Candidate) {
				t.Fatalf("candidate %q is not a line of the body", c.Candidate)
			}
			if c.SDPMLineIndex == nil || int(*c.SDPMLineIndex) >= sections {
				t.Fatalf("candidate %q filed under no media section (%d sections)", c.Candidate, sections)
			}
			if cand, err := ice.UnmarshalCandidate(c.Candidate); err == nil && cand.Address() == "" {
				t.Fatalf("candidate %q parsed without an address", c.Candidate)
			}
		}
	})
}
