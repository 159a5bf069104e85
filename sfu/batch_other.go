//go:build !linux

package sfu

import (
	"errors"
	"net"
)

// newSysBatchWriter has no direct system call path off Linux: x/net's
// WriteBatch sends one datagram per call there.
func newSysBatchWriter(*net.UDPConn) (batchWriter, error) {
	return nil, errors.ErrUnsupported
}

// gsoSupported: UDP GSO is Linux's.
func gsoSupported(*net.UDPConn) bool { return false }

// gsoControl is never called off Linux (gsoSupported is false).
func gsoControl(b []byte, _ int) []byte { return b }

// newReader: off Linux the socket reads itself.
func newReader(conn *net.UDPConn) addrPortReader { return udpReader{conn} }
