//go:build linux

package sfu

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// mmsgWriter calls sendmmsg(2) directly on the socket, without the Go
// scheduler's system call bookkeeping. A batch over a non-blocking UDP
// socket never sleeps in the kernel (a full send buffer returns EAGAIN),
// so it is CPU work like any other; announced as a blocking system call
// (syscall.Syscall), each one longer than the runtime's 20 µs monitor tick
// made the monitor hand the sender's P to another thread and wake it
// again afterwards, which cost more than the batching saved.
type mmsgWriter struct {
	rc    syscall.RawConn
	hdrs  [batchMax]unix.Mmsghdr
	iovs  [batchMax * gsoMaxSegments]unix.Iovec
	addrs [batchMax]unix.RawSockaddrInet6 // large enough for either family
	// The current call: rc.Write's callback reads n and flags and sets
	// sent and errno. It is bound once (send), so a call allocates nothing.
	n, flags, sent int
	errno          syscall.Errno
	send           func(fd uintptr) bool
}

// newSysBatchWriter returns the direct sendmmsg writer for conn.
func newSysBatchWriter(conn *net.UDPConn) (batchWriter, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &mmsgWriter{rc: rc}
	w.send = w.sendmmsg
	return w, nil
}

// WriteBatch sends ms with one sendmmsg(2) and returns how many left, as
// x/net's WriteBatch does. It is not safe for concurrent use: each
// shard has its own writer, used under the shard's sendMu.
func (w *mmsgWriter) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	w.n, w.flags = min(len(ms), batchMax), flags
	iov := 0
	for i := range w.n {
		used, err := w.fill(i, ms[i], w.iovs[iov:])
		if err != nil {
			return 0, err
		}
		iov += used
	}
	if err := w.rc.Write(w.send); err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: w.errno}
	}
	return w.sent, nil
}

// sendmmsg is rc.Write's callback: false asks the poller to wait until
// the socket is writable and call again.
func (w *mmsgWriter) sendmmsg(fd uintptr) bool {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd,
		uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(w.n), uintptr(w.flags|unix.MSG_DONTWAIT), 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	w.sent, w.errno = int(r), e
	return true
}

// fill writes message m into slot i: its buffers as iovecs from iovs
// (it returns how many it used), its control data (a GSO segment size),
// and its destination, AF_INET for an IPv4 (or IPv4-mapped) address,
// which a dual-stack socket also accepts.
func (w *mmsgWriter) fill(i int, m ipv4.Message, iovs []unix.Iovec) (int, error) {
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok || len(m.Buffers) == 0 || len(m.Buffers) > len(iovs) {
		return 0, errors.New("sfu: sendmmsg: buffers and a UDP address per message")
	}
	for k, buf := range m.Buffers {
		iovs[k] = unix.Iovec{} // an empty datagram is valid UDP
		if len(buf) > 0 {
			iovs[k].Base = &buf[0]
			iovs[k].SetLen(len(buf))
		}
	}
	h := &w.hdrs[i]
	*h = unix.Mmsghdr{}
	h.Hdr.Iov = &iovs[0]
	h.Hdr.SetIovlen(len(m.Buffers))
	if len(m.OOB) > 0 {
		h.Hdr.Control = &m.OOB[0]
		h.Hdr.SetControllen(len(m.OOB))
	}
	w.fillAddr(h, i, ua)
	return len(m.Buffers), nil
}

// fillAddr writes ua into slot i's sockaddr.
func (w *mmsgWriter) fillAddr(h *unix.Mmsghdr, i int, ua *net.UDPAddr) {
	sa := &w.addrs[i]
	port := uint16(ua.Port)
	if ip4 := ua.IP.To4(); ip4 != nil {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
		copy(s4.Addr[:], ip4)
		s4.Port = htons(port)
		h.Hdr.Name = (*byte)(unsafe.Pointer(s4))
		h.Hdr.Namelen = unix.SizeofSockaddrInet4
		return
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6}
	copy(sa.Addr[:], ua.IP.To16())
	sa.Port = htons(port)
	h.Hdr.Name = (*byte)(unsafe.Pointer(sa))
	h.Hdr.Namelen = unix.SizeofSockaddrInet6
}

// gsoControl appends to b the control message (udp(7), UDP_SEGMENT) that
// asks the kernel to cut a message into datagrams of size bytes.
func gsoControl(b []byte, size int) []byte {
	b = b[:unix.CmsgSpace(2)]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = uint16(size)
	return b
}

// gsoSupported reports whether the kernel offers UDP GSO on conn: the
// option is readable where it exists (Linux 4.18 and later).
func gsoSupported(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

// htons stores port in network byte order, as sockaddr's port field is.
func htons(port uint16) uint16 {
	b := [2]byte{byte(port >> 8), byte(port)}
	return *(*uint16)(unsafe.Pointer(&b[0]))
}

// rawReader reads the socket with recvfrom(2) called directly, for the
// reason mmsgWriter sends that way: the socket is non-blocking, so a read
// never sleeps in the kernel (no datagram returns EAGAIN and the poller
// waits), and announced as a blocking system call each read that spanned
// a tick of the runtime's monitor made it take the reader's P away, and
// kept the monitor waking every 20 µs.
type rawReader struct {
	mu    sync.Mutex // pion's mux reads from one goroutine; this keeps it safe
	rc    syscall.RawConn
	buf   []byte
	n     int
	from  unix.RawSockaddrInet6 // large enough for either family
	flen  uint32
	errno syscall.Errno
	recv  func(fd uintptr) bool
}

// newRawReader returns the direct recvfrom reader for conn.
func newRawReader(conn *net.UDPConn) (*rawReader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawReader{rc: rc}
	r.recv = r.recvfrom
	return r, nil
}

// ReadFromAddrPort reads one datagram into b.
func (r *rawReader) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	if len(b) == 0 {
		return 0, netip.AddrPort{}, errors.New("sfu: read: empty buffer")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = b
	err := r.rc.Read(r.recv)
	r.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if r.errno != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	return r.n, r.addr(), nil
}

// recvfrom is rc.Read's callback: false asks the poller to wait until the
// socket is readable and call again.
func (r *rawReader) recvfrom(fd uintptr) bool {
	r.flen = uint32(unsafe.Sizeof(r.from))
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.from)), uintptr(unsafe.Pointer(&r.flen)))
	if e == unix.EAGAIN {
		return false
	}
	r.n, r.errno = int(n), e
	return true
}

// addr decodes the sender's address of the last read.
func (r *rawReader) addr() netip.AddrPort {
	if r.from.Family == unix.AF_INET {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.from))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(&s4.Port))
	}
	return netip.AddrPortFrom(netip.AddrFrom16(r.from.Addr), ntohs(&r.from.Port))
}

// ntohs reads a port stored in network byte order.
func ntohs(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// newReader is the direct reader where the socket offers one.
func newReader(conn *net.UDPConn) addrPortReader {
	if r, err := newRawReader(conn); err == nil {
		return r
	}
	return udpReader{conn}
}
