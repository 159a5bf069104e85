package bench

import (
	"hash/maphash"
	"sync"
)

// The publisher and the students live in one process and read one clock,
// so the forwarding latency of a video packet is its arrival time at a
// student minus the time the publisher wrote it. The SFU rewrites RTP
// headers but never the payload (docs/architecture.md), so the payload
// identifies the packet on both sides: the publisher records each payload's
// hash with its send time and index, and students look the hash up.

// sendRecord is what the publisher knows about one video packet.
type sendRecord struct {
	at  int64  // send time, nanoseconds on the run's clock
	idx uint64 // the packet's index in the published stream, from 1
}

const (
	sendShards = 16
	// sendSpan is how long a record surely stays: records live between one
	// and two spans, so memory stays bounded (a 1.5 Mbit/s stream sends
	// about 160 packets a second) and a packet later than this is unmatched.
	sendSpan = int64(3e9)
)

// sendLog maps payload hashes to send records. It is sharded by hash so
// many students read it at once; each shard keeps two generations of
// records and drops the older one when the newer one is a span old.
type sendLog struct {
	seed   maphash.Seed
	shards [sendShards]sendShard
}

type sendShard struct {
	mu      sync.Mutex
	cur     map[uint64]sendRecord
	prev    map[uint64]sendRecord
	rotated int64
	_       [32]byte // keeps neighbouring shards' locks off one cache line
}

func newSendLog() *sendLog {
	l := &sendLog{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].cur = map[uint64]sendRecord{}
	}
	return l
}

func (l *sendLog) hash(payload []byte) uint64 { return maphash.Bytes(l.seed, payload) }

// put records a payload's hash; called by the publisher's sending goroutine.
func (l *sendLog) put(h uint64, r sendRecord) {
	s := &l.shards[h%sendShards]
	s.mu.Lock()
	if r.at-s.rotated >= sendSpan {
		s.prev, s.cur = s.cur, make(map[uint64]sendRecord, len(s.cur))
		s.rotated = r.at
	}
	s.cur[h] = r
	s.mu.Unlock()
}

// get finds the record of a payload hash.
func (l *sendLog) get(h uint64) (sendRecord, bool) {
	s := &l.shards[h%sendShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.cur[h]; ok {
		return r, true
	}
	r, ok := s.prev[h]
	return r, ok
}

// size is the number of records held, for tests.
func (l *sendLog) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}
