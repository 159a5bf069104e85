package recording

import (
	"errors"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DiskSpace is the free bytes (for an unprivileged user) and the size of
// the file system holding dir, or of its nearest existing parent: the
// recordings' directory is made with the first recording. ok is false
// when no parent can be read.
func DiskSpace(dir string) (free, size uint64, ok bool) {
	for {
		var st unix.Statfs_t
		err := unix.Statfs(dir, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), true
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return 0, 0, false
		}
		dir = parent
	}
}
