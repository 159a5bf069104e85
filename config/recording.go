package config

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Recording is the recording part of Config (docs/recording.md). It is
// inlined in Config: its keys are top-level keys like every other.
type Recording struct {
	// Record records every class from the teacher's first camera stream.
	Record bool `yaml:"record"`
	// RecordingRetention deletes recordings older than this (a periodic
	// sweep); 0 keeps them forever.
	RecordingRetention Retention `yaml:"recording_retention"`
	// RecordingLinkTTL is how long a replay link minted for students
	// works; 0 means DefaultLinkTTL.
	RecordingLinkTTL time.Duration `yaml:"recording_link_ttl"`
}

// DefaultLinkTTL is the lifetime of replay links when
// RecordingLinkTTL is 0.
const DefaultLinkTTL = 2 * time.Hour

// DefaultRecording is the recording part of Default: recordings only on
// request, kept forever, links of DefaultLinkTTL.
func DefaultRecording() Recording { return Recording{} }

// LinkTTL is RecordingLinkTTL with its default applied.
func (r Recording) LinkTTL() time.Duration {
	if r.RecordingLinkTTL == 0 {
		return DefaultLinkTTL
	}
	return r.RecordingLinkTTL
}

func (c *Config) recordingFields() []field {
	return []field{
		{"record", "LECTERN_RECORD", "record", "record every class from the teacher's first camera stream", boolValue{&c.Record}},
		{"recording_retention", "LECTERN_RECORDING_RETENTION", "recording-retention", "delete recordings older than this, e.g. 30d or 720h (0: keep them)", retentionValue{&c.RecordingRetention}},
		{"recording_link_ttl", "LECTERN_RECORDING_LINK_TTL", "recording-link-ttl", "how long a replay link minted for students works (0: 2h)", durationValue{&c.RecordingLinkTTL}},
	}
}

// validateRecording checks the recording settings.
func (c Config) validateRecording(bad func(format string, a ...any)) {
	if c.RecordingRetention < 0 {
		bad("recording_retention %v: must be 0 (keep) or positive", c.RecordingRetention)
	}
	if c.RecordingLinkTTL < 0 || c.RecordingLinkTTL > 7*24*time.Hour {
		bad("recording_link_ttl %v: want 0 (2h) or a positive duration of at most 7 days", c.RecordingLinkTTL)
	}
}

// Retention is a duration that may also be written in days ("30d"), the
// unit retention periods are thought in.
type Retention time.Duration

// Duration is r as a time.Duration.
func (r Retention) Duration() time.Duration { return time.Duration(r) }

// String writes whole days as "30d", anything else as a Go duration.
func (r Retention) String() string {
	d := time.Duration(r)
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// ParseRetention reads "30d", "12h", "90m" or "0".
func ParseRetention(s string) (Retention, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, errors.New("want whole days such as 30d, or a duration such as 720h")
		}
		return Retention(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want whole days such as 30d, or a duration such as 720h")
	}
	return Retention(d), nil
}

// MarshalYAML writes the String form.
func (r Retention) MarshalYAML() (any, error) { return r.String(), nil }

// UnmarshalYAML reads the forms ParseRetention accepts.
func (r *Retention) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRetention(n.Value)
	if err != nil {
		return errors.New("recording_retention " + strconv.Quote(n.Value) + ": " + err.Error())
	}
	*r = v
	return nil
}

type retentionValue struct{ p *Retention }

func (v retentionValue) Set(s string) error {
	r, err := ParseRetention(s)
	if err != nil {
		return err
	}
	*v.p = r
	return nil
}

func (v retentionValue) String() string {
	if v.p == nil {
		return "0"
	}
	return v.p.String()
}

// boolValue is a flag that needs no argument (--record), or takes one
// (--record=false); true, false, 1 and 0 in the environment.
type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v.p = b
	return nil
}

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

// IsBoolFlag lets the flag package accept --record alone.
func (v boolValue) IsBoolFlag() bool { return true }
