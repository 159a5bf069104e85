package app

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/pion/stun/v4"
	"github.com/stretchr/testify/require"
)

func stunMessage(t *testing.T, typ stun.MessageType) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, typ, stun.NewUsername("u"), stun.Fingerprint)
	require.NoError(t, err)
	return m.Raw
}

func TestClassify(t *testing.T) {
	t.Parallel()
	allocate := stunMessage(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest))
	binding := stunMessage(t, stun.BindingRequest)
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(binding)))
	framed = append(framed, binding...)
	clientHello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03}
	for name, c := range map[string]struct {
		b    []byte
		want connKind
	}{
		"TURN allocate":         {allocate, kindTURN},
		"STUN binding":          {binding, kindTURN},
		"RFC 4571 framed STUN":  {framed, kindICETCP},
		"TLS client hello":      {clientHello, kindTLS},
		"GET":                   {[]byte("GET /room/x HTTP/1.1\r\n"), kindHTTP},
		"POST":                  {[]byte("POST /whep/x HTTP/1.1\r\n"), kindHTTP},
		"PRI (HTTP/2 preface)":  {[]byte("PRI * HTTP/2.0\r\n"), kindHTTP},
		"binary without cookie": {[]byte{0, 1, 0, 8, 1, 2, 3, 4, 5, 6}, kindHTTP},
		"short binary":          {[]byte{0, 1, 0}, kindHTTP},
		"empty":                 {nil, kindHTTP},
		"ChannelData":           {[]byte{0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 0, 0}, kindHTTP},
	} {
		require.Equal(t, c.want, classify(c.b[:min(len(c.b), sniffLen)]), name)
	}
}

// TestSniffReplays: whatever kind, the connection handed on reads every
// byte the client sent, the sniffed ones first.
func TestSniffReplays(t *testing.T) {
	t.Parallel()
	for _, msg := range [][]byte{
		stunMessage(t, stun.BindingRequest),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x00}, // fewer bytes than sniffLen, then the client closes
	} {
		a, b := net.Pipe()
		go func() {
			// The binary one arrives in pieces, as TCP may deliver it.
			for i := 0; i < len(msg); i += 3 {
				_, _ = a.Write(msg[i:min(i+3, len(msg))])
			}
			_ = a.Close()
		}()
		c, _, err := sniff(b, "tcp")
		require.NoError(t, err)
		got, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, msg, got)
		_ = b.Close()
	}
}
