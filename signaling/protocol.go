package signaling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"
)

// Message types (docs/protocol.md).
const (
	typeJoin               = "join"
	typePublish            = "publish"
	typeUnpublish          = "unpublish"
	typeSubscribe          = "subscribe"
	typeAnswer             = "answer"
	typeICE                = "ice"
	typeChat               = "chat"
	typeHand               = "hand"
	typeLowerHand          = "lower_hand"
	typeInvite             = "invite"
	typeRevoke             = "revoke"
	typeRemove             = "remove"
	typeLeave              = "leave"
	typeWelcome            = "welcome"
	typeOffer              = "offer"
	typeStreamAdded        = "stream_added"
	typeStreamClosed       = "stream_closed"
	typeLive               = "live"
	typeParticipantJoined  = "participant_joined"
	typeParticipantLeft    = "participant_left"
	typeParticipantUpdated = "participant_updated"
	typeRemoved            = "removed"
	typeShutdown           = "shutdown"
	typeError              = "error"
	typeRecord             = "record"
	typeRecording          = "recording"
	typeRecordingFailed    = "recording_failed"
	typeRedirect           = "redirect"
)

// Stream labels.
const (
	labelCamera = "camera"
	labelScreen = "screen"
)

// Protocol limits.
const (
	maxRIDLen      = 64
	maxStreamIDLen = 64
	maxChatRunes   = 1000
	maxNameRunes   = 64
	maxRoomLen     = 128
	maxSDPLen      = 60 << 10
)

// envelope is the one JSON object every message travels in.
type envelope struct {
	Type string          `json:"type"`
	RID  string          `json:"rid,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// request is a decoded client message: Data is a pointer to its payload.
type request struct {
	Type string
	RID  string
	Data any
}

// payload is a client payload that checks its own fields.
type payload interface{ validate() error }

// Client payloads.
type (
	joinData struct {
		Token string `json:"token"`
		// Room, when set, must be covered by the token; without it the
		// token's own room is joined.
		Room string `json:"room,omitempty"`
	}
	publishData struct {
		Stream string `json:"stream"`
		Label  string `json:"label"`
		SDP    string `json:"sdp"`
	}
	streamRef struct {
		Stream string `json:"stream"`
	}
	answerData struct {
		Stream string `json:"stream"`
		SDP    string `json:"sdp"`
	}
	iceData struct {
		Stream    string                   `json:"stream"`
		Candidate *webrtc.ICECandidateInit `json:"candidate"`
	}
	chatData struct {
		Text string `json:"text"`
	}
	handData struct {
		Raised *bool `json:"raised"`
	}
	participantRef struct {
		ID string `json:"id"`
	}
	noData struct{}
)

// newPayload returns an empty payload of a client message type.
func newPayload(typ string) (payload, bool) {
	switch typ {
	case typeJoin:
		return &joinData{}, true
	case typePublish:
		return &publishData{}, true
	case typeUnpublish, typeSubscribe:
		return &streamRef{}, true
	case typeAnswer:
		return &answerData{}, true
	case typeICE:
		return &iceData{}, true
	case typeChat:
		return &chatData{}, true
	case typeHand:
		return &handData{}, true
	case typeLowerHand, typeInvite, typeRevoke, typeRemove:
		return &participantRef{}, true
	case typeLeave:
		return &noData{}, true
	case typeRecord:
		return &recordData{}, true
	case typeStats:
		return &statsData{}, true
	}
	return nil, false
}

// decodeRequest decodes one client message. The returned request carries
// the rid even when decoding fails, so the error reply can echo it.
func decodeRequest(raw []byte) (request, error) {
	var env envelope
	if err := decodeStrict(raw, &env); err != nil {
		return request{}, fmt.Errorf("%w: envelope: %v", ErrBadRequest, err)
	}
	req := request{Type: env.Type, RID: env.RID}
	if len(env.RID) > maxRIDLen {
		return request{Type: env.Type}, fmt.Errorf("%w: rid longer than %d", ErrBadRequest, maxRIDLen)
	}
	if env.Type == "" {
		return req, fmt.Errorf("%w: missing type", ErrBadRequest)
	}
	p, ok := newPayload(env.Type)
	if !ok {
		return req, fmt.Errorf("%w: %.64q", ErrUnknownType, env.Type)
	}
	data := []byte(env.Data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		data = []byte("{}")
	}
	if err := decodeStrict(data, p); err != nil {
		return req, fmt.Errorf("%w: %s: %v", ErrBadRequest, env.Type, err)
	}
	if err := p.validate(); err != nil {
		return req, err
	}
	req.Data = p
	return req, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

func badField(field, why string) error {
	return fmt.Errorf("%w: %s %s", ErrBadRequest, field, why)
}

func (d *joinData) validate() error {
	if d.Token == "" {
		return badField("token", "is required")
	}
	if d.Room != "" && !validRoom(d.Room) {
		return badField("room", "is not a valid class id")
	}
	return nil
}

func (d *publishData) validate() error {
	if !validStreamID(d.Stream) {
		return badField("stream", "must be 1 to 64 characters of [A-Za-z0-9_-]")
	}
	if d.Label != labelCamera && d.Label != labelScreen {
		return badField("label", "must be camera or screen")
	}
	return validSDP(d.SDP)
}

func (d *streamRef) validate() error { return validRef(d.Stream) }

func (d *answerData) validate() error {
	if err := validRef(d.Stream); err != nil {
		return err
	}
	return validSDP(d.SDP)
}

func (d *iceData) validate() error { return validRef(d.Stream) }

func (d *chatData) validate() error {
	n := utf8.RuneCountInString(d.Text)
	if n < 1 || n > maxChatRunes || !utf8.ValidString(d.Text) {
		return badField("text", "must be 1 to 1000 characters")
	}
	for _, r := range d.Text {
		if !chatRune(r) {
			return badField("text", fmt.Sprintf("must not contain control or bidirectional override characters (U+%04X)", r))
		}
	}
	return nil
}

// chatRune: chat text may hold line breaks and tabs but no other control
// character (NUL and C0/C1, which some terminals and logs act on), and
// none of the bidirectional embeddings, overrides and isolates (U+202A to
// U+202E, U+2066 to U+2069) that make text read differently from what
// it is (Unicode UAX #9; CVE-2021-42574).
func chatRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return true
	case unicode.IsControl(r):
		return false
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return false
	}
	return true
}

func (d *handData) validate() error {
	if d.Raised == nil {
		return badField("raised", "is required")
	}
	return nil
}

func (d *participantRef) validate() error {
	if d.ID == "" || len(d.ID) > 256 {
		return badField("id", "is required")
	}
	return nil
}

func (*noData) validate() error { return nil }

// validStreamID: a client-chosen stream id is 1 to 64 of [A-Za-z0-9_-].
// Server ids add a ':' so they never collide with a client's own ids.
func validStreamID(s string) bool {
	if len(s) < 1 || len(s) > maxStreamIDLen {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || (r >= '0' && r <= '9') ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// validRef accepts either kind of stream id a client may name.
func validRef(s string) error {
	if s == "" || len(s) > 512 {
		return badField("stream", "is required")
	}
	return nil
}

func validSDP(s string) error {
	if s == "" || len(s) > maxSDPLen {
		return badField("sdp", "is required")
	}
	return nil
}

// validRoom: a class id is printable UTF-8, at most 128 bytes.
func validRoom(s string) bool {
	if s == "" || len(s) > maxRoomLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '/' {
			return false
		}
	}
	return true
}

// validName: a display name is 1 to 64 printable characters, and at most
// 64 bytes, the token's own limit.
func validName(s string) bool {
	if !utf8.ValidString(s) || len(s) > maxNameRunes {
		return false
	}
	n := 0
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
		n++
	}
	return n >= 1
}

// Server payloads.
type (
	participantInfo struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		Role       string `json:"role"`
		Hand       bool   `json:"hand"`
		CanPublish bool   `json:"can_publish"`
	}
	streamInfo struct {
		Stream string   `json:"stream"`
		Owner  string   `json:"owner"`
		Label  string   `json:"label"`
		Kinds  []string `json:"kinds"`
	}
	chatMsg struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Text string `json:"text"`
		TS   int64  `json:"ts"`
	}
	welcomeData struct {
		Room         string            `json:"room"`
		You          participantInfo   `json:"you"`
		Participants []participantInfo `json:"participants"`
		Streams      []streamInfo      `json:"streams"`
		Live         bool              `json:"live"`
		Chat         []chatMsg         `json:"chat"`
		Recording    recordingData     `json:"recording"`
		// Node and Nodes: this node's id and the live nodes' base URLs,
		// in a cluster only (docs/protocol.md).
		Node  string   `json:"node,omitempty"`
		Nodes []string `json:"nodes,omitempty"`
		// ICEServers are the participant's STUN and TURN servers, for its
		// peer connections' configuration.
		ICEServers []iceServerInfo `json:"ice_servers"`
		// Connections are the participants' paths, to teachers and
		// operators only (paths.go).
		Connections map[string]string `json:"connections,omitempty"`
	}
	redirectData struct {
		URL    string `json:"url"`
		Reason string `json:"reason"`
	}
	offerData struct {
		Stream string `json:"stream"`
		Owner  string `json:"owner"`
		Label  string `json:"label"`
		SDP    string `json:"sdp"`
	}
	iceOut struct {
		Stream    string                  `json:"stream"`
		Candidate webrtc.ICECandidateInit `json:"candidate"`
	}
	liveData struct {
		Live bool `json:"live"`
	}
	reasonData struct {
		Reason string `json:"reason"`
	}
	errorData struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

// encode builds one server message. Only the types above are encoded, so
// marshalling cannot fail; a failure would be a bug and yields nil.
func encode(typ, rid string, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil
	}
	b, err := json.Marshal(envelope{Type: typ, RID: rid, Data: raw})
	if err != nil {
		return nil
	}
	return b
}
