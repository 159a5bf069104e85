package app

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// FuzzSniff: any first bytes are classified without panicking, and the
// connection handed on replays exactly what the client sent.
func FuzzSniff(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01})
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4})
	f.Add([]byte{0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42})
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = classify(msg[:min(len(msg), sniffLen)])
		if len(msg) == 0 {
			return
		}
		a, b := net.Pipe()
		defer b.Close()
		go func() { _, _ = a.Write(msg); _ = a.Close() }()
		c, _, err := sniff(b, "tcp")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		if !bytes.Equal(got, msg) {
			t.Fatalf("replayed %x, sent %x", got, msg)
		}
	})
}
