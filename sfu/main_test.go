package sfu

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// engine, peer connection, track reader and down track writer started by
// a test must be gone once everything is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
