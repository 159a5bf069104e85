package signaling

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"lectern/auth"
)

// FuzzDecodeRequest drives every client message through decodeRequest,
// the websocket reader's decode and validate step (conn.handle): it never
// panics, a refusal is a protocol error (docs/protocol.md, "Errors"), and
// a message it accepts has a payload of its type that passes its own
// checks, re-encodes into an envelope and decodes again to the same
// request. Seeds: one real message of every client type (a minted token,
// pion's offer and answer, a pion candidate).
func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := decodeRequest(raw)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("refusal %v is not a protocol error", err)
			}
			if protocolCode(err) == "" || clientMessage(err) == "" {
				t.Fatalf("refusal %v has no code or message for the client", err)
			}
			if len(req.RID) > maxRIDLen {
				t.Fatalf("refusal echoes a rid of %d bytes", len(req.RID))
			}
			return
		}
		want, ok := newPayload(req.Type)
		if !ok || reflect.TypeOf(want) != reflect.TypeOf(req.Data) {
			t.Fatalf("type %q decoded to %T", req.Type, req.Data)
		}
		if err := req.Data.(payload).validate(); err != nil {
			t.Fatalf("accepted payload fails its own check: %v", err)
		}
		again := encode(req.Type, req.RID, req.Data)
		if again == nil || !json.Valid(again) {
			t.Fatalf("accepted %q does not re-encode: %q", raw, again)
		}
		back, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded %q is refused: %v", again, err)
		}
		if !reflect.DeepEqual(back, req) {
			t.Fatalf("round trip changed the request: %+v, then %+v", req, back)
		}
	})
}

// FuzzNames checks the validators of what clients name: class ids,
// display names, class titles and stream ids. What they accept is valid
// UTF-8, printable, within its limits, and fits in a token (Mint refuses
// nothing they let through: a refusal there would reach the client as
// "invalid or expired token"). Seeds: names and titles of the lobby,
// generated class ids.
func FuzzNames(f *testing.F) {
	signer, err := auth.NewSigner([]byte(testSecret))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		printable := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
		if validRoom(s) && (!printable || len(s) > maxRoomLen || strings.Contains(s, "/")) {
			t.Fatalf("class id %q accepted", s)
		}
		if validName(s) && (!printable || len(s) > maxNameRunes) {
			t.Fatalf("name %q accepted", s)
		}
		if validTitle(s) && (!printable || utf8.RuneCountInString(s) > 200) {
			t.Fatalf("title %q accepted", s)
		}
		if validStreamID(s) && (len(s) > maxStreamIDLen || strings.ContainsAny(s, ":/ ")) {
			t.Fatalf("stream id %q accepted", s)
		}
		name := strings.TrimSpace(s)
		// "*" is a valid class id for an operator's token only
		// (auth.AllRooms); joins refuse it before any token is made.
		if validRoom(s) && s != auth.AllRooms && validName(name) && validTitle(s) {
			c := auth.Claims{Room: s, Role: auth.RoleTeacher, Name: name, Title: strings.TrimSpace(s)}
			if _, err := signer.Mint(c, time.Minute); err != nil {
				t.Fatalf("accepted class %q does not fit a token: %v", s, err)
			}
		}
		if validTitle(s) {
			c := auth.Claims{Room: "r", Role: auth.RoleStudent, Invite: true, Participant: "i", Title: strings.TrimSpace(s)}
			if _, err := signer.Mint(c, time.Minute); err != nil {
				t.Fatalf("accepted title %q does not fit an invite: %v", s, err)
			}
		}
	})
}
