// Package web holds Lectern's pages, embedded in the binary.
package web

import (
	"embed"
	"io/fs"
)

// files is immutable once compiled in, so it is safe as package state.
//
//go:embed index.html room.html replay.html operator.html check.html assets
var files embed.FS

// FS returns the pages: index.html, room.html, replay.html, operator.html,
// check.html and assets/.
func FS() fs.FS { return files }
