package recording

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRepair runs Repair on damaged recordings: the fuzzed bytes as a
// file. It never panics; it fails only with ErrCorrupt or not at all;
// a repaired file is as long as Repair says, scans again up to its end,
// and a second Repair changes nothing (idempotent, as after a crash during
// the first). Seeds: recordings of the recorder (VP8 and Opus, H.264, AV1),
// cut at several places, with and without the Cues of a clean stop.
func FuzzRepair(f *testing.F) {
	dir := fuzzDir(f)
	f.Fuzz(func(t *testing.T, file []byte) {
		path := filepath.Join(dir, "fuzz.webm")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Repair(path)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("repair failed with %v, not ErrCorrupt", err)
			}
			return
		}
		st, err := os.Stat(path)
		if err != nil || st.Size() != res.Size {
			t.Fatalf("repaired file of %v bytes, Repair says %d (%v)", st.Size(), res.Size, err)
		}
		again, err := Repair(path)
		if err != nil || again.Truncated != 0 || again.Duration != res.Duration || again.Clusters != res.Clusters {
			t.Fatalf("second repair: %+v, %v; first: %+v", again, err, res)
		}
	})
}

// fuzzDir is a directory for the files of a fuzz target, in memory when
// the system has a tmpfs at /dev/shm: Repair syncs what it wrote (fsync,
// milliseconds on a disk), and the fuzzer would wait for the disk rather
// than run inputs.
func fuzzDir(f *testing.F) string {
	dir, err := os.MkdirTemp("/dev/shm", "lectern-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
