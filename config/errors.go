package config

import "errors"

// Sentinel errors. cmd/lectern turns every one of them into exit status 2.
var (
	// ErrInvalid: a value has the wrong form or is out of range.
	ErrInvalid = errors.New("config: invalid value")
	// ErrUnknownKey: the YAML file has a key Config does not know.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrFile: the YAML file cannot be read or parsed.
	ErrFile = errors.New("config: bad file")
	// ErrUsage: the command line is malformed.
	ErrUsage = errors.New("config: bad usage")
)
