package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateSecret returns the signing secret kept in the file at path,
// creating the file with a fresh random secret when it does not exist.
//
// The secret is the file's text without surrounding whitespace, used as-is
// as the HS256 key: the same string a school system gives its own JWT
// library, and the same form LECTERN_SECRET takes. A created file holds
// 32 random bytes in hex (256 bits, RFC 7518 section 3.2 asks for a key at
// least as long as the hash), mode 0600, in a directory made with mode 0700.
// A file shorter than MinSecretLen is refused rather than used.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: secret directory: %w", err)
	}
	hexSecret, err := NewRandomSecret()
	if err != nil {
		return nil, err
	}
	if err := createExclusive(path, []byte(hexSecret+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use that one.
			return readSecret(path)
		}
		return nil, err
	}
	return []byte(hexSecret), nil
}

// CheckSecretMode reports a secret file that users other than its owner
// may read or write (any group or other permission bit), as an error
// wrapping ErrSecretExposed: whoever reads the secret can mint any token.
func CheckSecretMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("auth: secret file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrSecretExposed, path, perm, path)
	}
	return nil
}

func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinSecretLen {
		return nil, fmt.Errorf("%w: %s holds %d bytes", ErrSecret, path, len(b))
	}
	return b, nil
}

// createExclusive writes data to a temporary file in path's directory and
// hard-links it into place, so readers never see a half-written secret and
// a concurrent creator's file is never overwritten (the link fails with
// fs.ErrExist instead, where a rename would replace it).
func createExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return fmt.Errorf("auth: create secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states it.
	err = errors.Join(tmp.Chmod(0o600), write(tmp, data), tmp.Sync(), tmp.Close())
	if err != nil {
		return fmt.Errorf("auth: write secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("auth: create secret: %w", err)
	}
	return nil
}

func write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}
