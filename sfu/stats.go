package sfu

import "sync/atomic"

// Stats are cumulative counters, read by the metrics endpoint.
type Stats struct {
	PacketsIn        uint64
	BytesIn          uint64
	PacketsForwarded uint64
	BytesOut         uint64
	PacketsDropped   uint64
	NACKsServed      uint64
	KeyframeRequests uint64 // sent to publishers, after merging
	Tracks           int64  // live published tracks now
	Subscribers      int64  // live subscriber peer connections now
	// SubscribersDirect: those of them whose media goes past pion's
	// per-packet paths (direct.go).
	SubscribersDirect int64
	Publishers        int64 // live publisher peer connections now
}

// counters are the engine's live counters. The hot ones are padded onto
// their own cache lines: the reader goroutines bump the "in" counters and
// the writer shards the "out" counters, and sharing a line between
// cores would cost more than the additions themselves.
type counters struct {
	packetsIn        atomic.Uint64
	bytesIn          atomic.Uint64
	_                [48]byte
	packetsForwarded atomic.Uint64
	bytesOut         atomic.Uint64
	_                [48]byte
	packetsDropped   atomic.Uint64
	nacksServed      atomic.Uint64
	keyframeRequests atomic.Uint64
	tracks           atomic.Int64
	subscribers      atomic.Int64
	direct           atomic.Int64
	publishers       atomic.Int64
	// observer receives every down track's receiver reports
	// (reception.go); nil: none. Down tracks reach it through their
	// counters, which every down track of the engine shares.
	observer atomic.Pointer[ReceptionObserver]
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsIn:         c.packetsIn.Load(),
		BytesIn:           c.bytesIn.Load(),
		PacketsForwarded:  c.packetsForwarded.Load(),
		BytesOut:          c.bytesOut.Load(),
		PacketsDropped:    c.packetsDropped.Load(),
		NACKsServed:       c.nacksServed.Load(),
		KeyframeRequests:  c.keyframeRequests.Load(),
		Tracks:            c.tracks.Load(),
		Subscribers:       c.subscribers.Load(),
		SubscribersDirect: c.direct.Load(),
		Publishers:        c.publishers.Load(),
	}
}
