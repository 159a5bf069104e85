package client

import (
	"sort"
	"strings"
)

const (
	maxChatLog = 1000
	maxErrors  = 100
)

// RequestError is an error reply; RID starts with the request's type
// ("invite-7"), so tests can tell which request failed.
type RequestError struct {
	RID string
	Err *ServerError
}

// state is what the client knows about its class, kept from the messages.
type state struct {
	welcome      Welcome
	me           Participant
	participants map[string]Participant
	streams      map[string]Stream
	live         bool
	chat         []Chat
	errors       []RequestError
	reason       string            // of removed or shutdown
	quality      map[string]string // participant id -> verdict (teachers and operators)
	connections  map[string]string // participant id -> path (teachers and operators)
}

func newState() state {
	return state{participants: map[string]Participant{}, streams: map[string]Stream{}, connections: map[string]string{}}
}

// handle updates the state and drives the peer connections for one event.
// It runs in the reader goroutine.
func (c *Client) handle(ev Event) {
	switch d := ev.Data.(type) {
	case *Welcome:
		c.onWelcome(d)
	case *Offer:
		if !c.opts.NoSubscribe {
			c.subscribe(d)
		}
	case *Answer:
		c.onAnswer(ev.RID, d)
	case *ICE:
		c.onRemoteICE(d)
	case *StreamRef:
		c.onStreamClosed(d.Stream)
	case *ServerError:
		c.onError(ev.RID, d)
	case *Redirect:
		c.mu.Lock()
		c.redirect = d
		c.mu.Unlock()
	default:
		c.mu.Lock()
		c.state.apply(ev)
		c.mu.Unlock()
	}
}

func (c *Client) onWelcome(w *Welcome) {
	c.mu.Lock()
	c.state.welcome = *w
	c.state.me = w.You
	c.state.live = w.Live
	for _, p := range w.Participants {
		c.state.participants[p.ID] = p
	}
	for _, s := range w.Streams {
		c.state.streams[s.Stream] = s
	}
	c.state.chat = append(c.state.chat, w.Chat...)
	for id, path := range w.Connections {
		c.state.connections[id] = path
	}
	if len(w.Nodes) > 0 {
		c.nodes = normalizeAll(w.Nodes)
	}
	c.mu.Unlock()
	select {
	case <-c.welcomed:
	default:
		close(c.welcomed)
	}
}

// apply handles the messages that only change state.
func (s *state) apply(ev Event) {
	switch d := ev.Data.(type) {
	case *Stream:
		s.streams[d.Stream] = *d
	case *Live:
		s.live = d.Live
	case *Participant:
		s.participants[d.ID] = *d
		if d.ID == s.me.ID {
			s.me = *d
		}
	case *ParticipantRef:
		delete(s.participants, d.ID)
	case *Chat:
		s.chat = append(s.chat, *d)
		if len(s.chat) > maxChatLog {
			s.chat = append(s.chat[:0:0], s.chat[len(s.chat)-maxChatLog:]...)
		}
	case *Reason:
		s.reason = d.Reason
	case *Quality:
		s.quality = d.Participants
	case *ParticipantConnection:
		s.connections[d.ID] = d.Connection
	}
}

// Verdicts are the latest verdicts on the students' connections, by
// participant id (teachers and operators only receive them).
func (c *Client) Verdicts() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.state.quality))
	for k, v := range c.state.quality {
		out[k] = v
	}
	return out
}

func (c *Client) onError(rid string, e *ServerError) {
	c.mu.Lock()
	c.state.errors = append(c.state.errors, RequestError{RID: rid, Err: e})
	if len(c.state.errors) > maxErrors {
		c.state.errors = c.state.errors[1:]
	}
	p := c.pending[rid]
	delete(c.pending, rid)
	c.mu.Unlock()
	if p != nil {
		p.reply(nil, e)
	}
}

// Chat sends a chat message to the class.
func (c *Client) Chat(text string) error {
	return c.send(TypeChat, c.newRID(TypeChat), chatData{Text: text})
}

// Hand raises or lowers the client's hand.
func (c *Client) Hand(raised bool) error {
	return c.send(TypeHand, c.newRID(TypeHand), handData{Raised: raised})
}

// Stats reports what the client received of a stream, as the class page
// does every few seconds: frames decoded, freezes, and the jitter
// buffer's mean delay in milliseconds.
func (c *Client) Stats(stream string, framesDecoded, freezes uint64, jitterBufferMs float64) error {
	return c.send(TypeStats, c.newRID(TypeStats), statsData{
		Stream: stream, FramesDecoded: framesDecoded, Freezes: freezes, JitterBufferMs: jitterBufferMs,
	})
}

// Invite lets a student publish a camera stream (teacher only).
func (c *Client) Invite(id string) error { return c.moderate(TypeInvite, id) }

// Revoke takes the floor back from a student (teacher only).
func (c *Client) Revoke(id string) error { return c.moderate(TypeRevoke, id) }

// Remove removes a student from the class for good (teacher only).
func (c *Client) Remove(id string) error { return c.moderate(TypeRemove, id) }

// LowerHand lowers a student's hand (teacher only).
func (c *Client) LowerHand(id string) error { return c.moderate(TypeLowerHand, id) }

func (c *Client) moderate(typ, id string) error {
	return c.send(typ, c.newRID(typ), ParticipantRef{ID: id})
}

// Connections are the participants' paths the server told this teacher
// or operator of, by participant id.
func (c *Client) Connections() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.state.connections))
	for id, p := range c.state.connections {
		out[id] = p
	}
	return out
}

// Welcome is the server's welcome message.
func (c *Client) Welcome() Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.welcome
}

// Me is the client's own participant, as last announced.
func (c *Client) Me() Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.me
}

// ID is the client's participant id.
func (c *Client) ID() string { return c.Me().ID }

// Participants lists the class members the client knows of, by id.
func (c *Client) Participants() []Participant {
	c.mu.Lock()
	out := make([]Participant, 0, len(c.state.participants))
	for _, p := range c.state.participants {
		out = append(out, p)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Participant returns one member by id.
func (c *Client) Participant(id string) (Participant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.state.participants[id]
	return p, ok
}

// Streams lists the live streams the server announced, by id.
func (c *Client) Streams() []Stream {
	c.mu.Lock()
	out := make([]Stream, 0, len(c.state.streams))
	for _, s := range c.state.streams {
		out = append(out, s)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

// Live reports whether the teacher's camera stream runs.
func (c *Client) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.live
}

// ChatLog is the chat as received: the welcome's history, then new messages.
func (c *Client) ChatLog() []Chat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Chat(nil), c.state.chat...)
}

// HasChat reports whether a message with exactly text was received.
func (c *Client) HasChat(text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.state.chat {
		if m.Text == text {
			return true
		}
	}
	return false
}

// Errors lists the server's error replies, oldest first.
func (c *Client) Errors() []RequestError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]RequestError(nil), c.state.errors...)
}

// ErrorsFor lists the error replies to requests of type typ.
func (c *Client) ErrorsFor(typ string) []RequestError {
	var out []RequestError
	for _, e := range c.Errors() {
		if strings.HasPrefix(e.RID, typ+"-") {
			out = append(out, e)
		}
	}
	return out
}

// Reason is the reason of a removed or shutdown message, if any came.
func (c *Client) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state.reason
}
