package client

import (
	"encoding/json"

	"github.com/pion/webrtc/v4"
)

// Message types of the classroom protocol (docs/protocol.md).
const (
	TypeJoin               = "join"
	TypePublish            = "publish"
	TypeUnpublish          = "unpublish"
	TypeAnswer             = "answer"
	TypeICE                = "ice"
	TypeChat               = "chat"
	TypeHand               = "hand"
	TypeLowerHand          = "lower_hand"
	TypeInvite             = "invite"
	TypeRevoke             = "revoke"
	TypeRemove             = "remove"
	TypeLeave              = "leave"
	TypeWelcome            = "welcome"
	TypeOffer              = "offer"
	TypeStreamAdded        = "stream_added"
	TypeStreamClosed       = "stream_closed"
	TypeLive               = "live"
	TypeParticipantJoined  = "participant_joined"
	TypeParticipantLeft    = "participant_left"
	TypeParticipantUpdated = "participant_updated"
	TypeRemoved            = "removed"
	TypeShutdown           = "shutdown"
	TypeRedirect           = "redirect"
	TypeError              = "error"
	TypeStats              = "stats"
	TypeQuality            = "quality"
	// TypeParticipantConnection (to teachers and operators): how a
	// participant's media reaches the node.
	TypeParticipantConnection = "participant_connection"
)

// Stream labels.
const (
	LabelCamera = "camera"
	LabelScreen = "screen"
)

// Close codes the server uses (docs/protocol.md, "Close codes").
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseTooBig       = 1009
	CloseUnauthorized = 4001
	CloseForbidden    = 4003
	CloseRateLimited  = 4008
	CloseReplaced     = 4009
	// CloseClassEnded: a teacher or operator ended the class for
	// everyone (DELETE /api/rooms/{room}); Reconnect does not join again.
	CloseClassEnded = 4010
	// CloseRedirect follows a redirect message: the client is to join
	// again on the node the message names (docs/cluster.md).
	CloseRedirect = 4307
)

// Reasons a server gives in a redirect message.
const (
	// RedirectOrigin: the class's origin (the teacher's node) is elsewhere.
	RedirectOrigin = "origin"
	// RedirectCapacity: this node is full.
	RedirectCapacity = "capacity"
)

// envelope is the one JSON object every message travels in.
type envelope struct {
	Type string          `json:"type"`
	RID  string          `json:"rid,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Participant is a member of a class.
type Participant struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Role       string `json:"role"`
	Hand       bool   `json:"hand"`
	CanPublish bool   `json:"can_publish"`
}

// Stream is a published stream as the server announces it.
type Stream struct {
	Stream string   `json:"stream"`
	Owner  string   `json:"owner"`
	Label  string   `json:"label"`
	Kinds  []string `json:"kinds"`
}

// Chat is one chat message.
type Chat struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Text string `json:"text"`
	TS   int64  `json:"ts"`
}

// Welcome is the server's reply to a good join.
type Welcome struct {
	Room         string        `json:"room"`
	You          Participant   `json:"you"`
	Participants []Participant `json:"participants"`
	Streams      []Stream      `json:"streams"`
	Live         bool          `json:"live"`
	Chat         []Chat        `json:"chat"`
	// Nodes are the base URLs of the live nodes of a cluster, this one
	// included; a client falls back to them when its node fails.
	Nodes []string `json:"nodes,omitempty"`
	// Node is the id of the node that sent the welcome.
	Node string `json:"node,omitempty"`
	// ICEServers configure the client's peer connections: the node's TURN
	// server with this participant's credentials, when it runs one.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	// Connections are the participants' paths (ParticipantConnection),
	// in a teacher's or operator's welcome only.
	Connections map[string]string `json:"connections,omitempty"`
}

// ParticipantConnection is how a participant's newest peer connection
// reaches the node: the client's candidate type and its transport, e.g.
// "host/udp", "host/tcp", "relay/tls".
type ParticipantConnection struct {
	ID         string `json:"id"`
	Connection string `json:"connection"`
}

// Redirect sends the client to another node: the server closes with
// CloseRedirect right after it.
type Redirect struct {
	URL    string `json:"url"`
	Reason string `json:"reason"`
}

// Offer is a stream the server asks the client to receive.
type Offer struct {
	Stream string `json:"stream"`
	Owner  string `json:"owner"`
	Label  string `json:"label"`
	SDP    string `json:"sdp"`
}

// Answer answers a publish (server to client) or an offer (client to server).
type Answer struct {
	Stream string `json:"stream"`
	SDP    string `json:"sdp"`
}

// ICE is a trickled candidate; a nil Candidate means end of candidates.
type ICE struct {
	Stream    string                   `json:"stream"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

// StreamRef names a stream (stream_closed, unpublish).
type StreamRef struct {
	Stream string `json:"stream"`
}

// ParticipantRef names a participant (participant_left, invite, revoke...).
type ParticipantRef struct {
	ID string `json:"id"`
}

// Live reports whether the teacher's camera stream runs.
type Live struct {
	Live bool `json:"live"`
}

// Reason explains a removed or shutdown message.
type Reason struct {
	Reason string `json:"reason"`
}

type joinData struct {
	Token string `json:"token"`
}

type publishData struct {
	Stream string `json:"stream"`
	Label  string `json:"label"`
	SDP    string `json:"sdp"`
}

type chatData struct {
	Text string `json:"text"`
}

type handData struct {
	Raised bool `json:"raised"`
}

// Quality is the verdict on each student's connection (good, weak or
// bad) the server sends a class's teachers and operators.
type Quality struct {
	Participants map[string]string `json:"participants"`
}

type statsData struct {
	Stream         string  `json:"stream"`
	FramesDecoded  uint64  `json:"frames_decoded"`
	Freezes        uint64  `json:"freezes"`
	JitterBufferMs float64 `json:"jitter_buffer_ms"`
}

// Event is one message received from the server. Data holds the decoded
// payload: *Welcome, *Offer, *Answer, *ICE, *Stream, *StreamRef, *Live,
// *Participant, *ParticipantRef, *Chat, *Reason, *Redirect,
// *ParticipantConnection or *ServerError, by Type.
type Event struct {
	Type string
	RID  string
	Data any
}

// decodeEvent decodes an envelope's payload into its typed form.
func decodeEvent(env envelope) (Event, error) {
	ev := Event{Type: env.Type, RID: env.RID}
	var target any
	switch env.Type {
	case TypeWelcome:
		target = &Welcome{}
	case TypeOffer:
		target = &Offer{}
	case TypeAnswer:
		target = &Answer{}
	case TypeICE:
		target = &ICE{}
	case TypeStreamAdded:
		target = &Stream{}
	case TypeStreamClosed:
		target = &StreamRef{}
	case TypeLive:
		target = &Live{}
	case TypeParticipantJoined, TypeParticipantUpdated:
		target = &Participant{}
	case TypeParticipantLeft:
		target = &ParticipantRef{}
	case TypeChat:
		target = &Chat{}
	case TypeRemoved, TypeShutdown:
		target = &Reason{}
	case TypeRedirect:
		target = &Redirect{}
	case TypeError:
		target = &ServerError{}
	case TypeQuality:
		target = &Quality{}
	case TypeParticipantConnection:
		target = &ParticipantConnection{}
	default:
		ev.Data = env.Data
		return ev, nil
	}
	if len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, target); err != nil {
			return ev, err
		}
	}
	ev.Data = target
	return ev, nil
}
