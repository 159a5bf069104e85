package sfu

// RoomID names a class.
type RoomID string

// ParticipantID names one participant of a class; it comes from the token.
type ParticipantID string

// StreamID names one published stream (one publisher peer connection: a
// camera with its microphone, or a screen share).
type StreamID string

// TrackID names one published track within the engine.
type TrackID string
