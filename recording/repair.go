package recording

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/at-wat/ebml-go"
)

// Matroska element IDs (RFC 9559 5.1), with their length marker bits.
const (
	idEBML        = 0x1A45DFA3
	idSegment     = 0x18538067
	idInfo        = 0x1549A966
	idTimecodeSc  = 0x2AD7B1
	idDuration    = 0x4489
	idVoid        = 0xEC
	idCues        = 0x1C53BB6B
	idCluster     = 0x1F43B675
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
	idBlockGroup  = 0xA0
	idBlock       = 0xA1
)

// unknownSize marks an element whose size the writer did not know
// (RFC 9559 6.2): all size bits set.
const unknownSize = -1

// Repaired describes what Repair found and fixed.
type Repaired struct {
	Duration  time.Duration // of the playable media
	Size      int64         // file size after repair
	Clusters  int
	Truncated int64 // bytes of an incomplete last element cut off
}

// Repair makes an unfinished recording (the writer crashed or was killed)
// fully usable: it cuts off a partly written last block, sets the
// Segment's Duration from the last block found, and writes Cues (the seek
// index) into the space reserved for them. Matroska files with unknown-size
// Segment and Clusters, as the recorder writes, are readable up to the
// last complete block, so nothing else needs rewriting. Repair is
// idempotent and works in place.
func Repair(path string) (Repaired, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Repaired{}, fmt.Errorf("recording: repair: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return Repaired{}, fmt.Errorf("recording: repair: %w", err)
	}
	sc := scanner{r: f, size: st.Size(), scale: 1_000_000}
	if err := sc.scan(); err != nil {
		return Repaired{}, err
	}
	sc.dropEmptyTail()
	res := Repaired{Size: sc.end, Clusters: len(sc.clusters), Truncated: st.Size() - sc.end}
	if res.Truncated > 0 {
		if err := f.Truncate(sc.end); err != nil {
			return res, fmt.Errorf("recording: repair: %w", err)
		}
	}
	res.Duration = time.Duration(sc.lastTC * int64(sc.scale))
	if err := sc.writeDuration(f); err != nil {
		return res, err
	}
	if err := sc.writeCues(f); err != nil {
		return res, err
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("recording: repair: %w", err)
	}
	return res, nil
}

// dropEmptyTail cuts a last cluster whose Timecode was never written: a
// cluster without one is invalid (RFC 9559 5.1.3.1).
func (s *scanner) dropEmptyTail() {
	if n := len(s.clusters); n > 0 && s.clusters[n-1].tc < 0 {
		s.end = s.segData + s.clusters[n-1].pos
		s.clusters = s.clusters[:n-1]
	}
}

type clusterPos struct {
	pos   int64 // relative to the Segment's data
	tc    int64
	track uint64 // track of its first block
}

// scanner walks the elements of a Matroska file, entering Segment,
// Cluster, Info and BlockGroup, skipping the rest.
type scanner struct {
	r        io.ReaderAt
	size     int64
	segData  int64 // offset of the Segment's data
	scale    uint64
	durPos   int64 // offset of the Duration value, 0 if none
	durLen   int64
	voidPos  int64 // the Void reserved for Cues (first Void before any Cluster)
	voidLen  int64
	hasCues  bool
	clusters []clusterPos
	lastTC   int64 // latest block time, in timecode-scale units
	end      int64 // end of the last complete element
	cur      *clusterPos
	// onBlock, when set, sees every block: its cluster, track, absolute
	// time and key frame flag (tests check the cluster policy with it).
	onBlock func(cluster int, track uint64, tc int64, key bool)
}

func (s *scanner) scan() error {
	id, _, data, err := s.header(0)
	if err != nil || id != idEBML {
		return fmt.Errorf("%w: no EBML header", ErrCorrupt)
	}
	if err := s.walk(data, s.size, 0); err != nil {
		return err
	}
	if s.segData == 0 {
		return fmt.Errorf("%w: no Segment", ErrCorrupt)
	}
	return nil
}

// walk reads the elements from pos up to limit; parent is the enclosing
// element's ID (0 at top level).
func (s *scanner) walk(pos, limit int64, parent uint32) error {
	for pos < limit {
		id, size, data, err := s.header(pos)
		if err != nil {
			return nil // truncated header: the file ends here
		}
		end := data + size
		if size == unknownSize {
			end = limit
		}
		if end < data {
			return nil // the header runs past its parent's end: damaged
		}
		// limit is the parent's end (the file's at most): a child that
		// runs past it is damaged, and what follows is not read.
		if end > limit {
			if id == idCluster || id == idSegment {
				end = limit // enter, keep what is complete
			} else {
				return nil
			}
		}
		next, err := s.element(id, pos, data, end, size, parent)
		if err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// element handles one element and returns where the next one starts.
func (s *scanner) element(id uint32, pos, data, end, size int64, parent uint32) (int64, error) {
	switch id {
	case idSegment:
		s.segData = data
		s.end = data
		return end, s.walk(data, end, id)
	case idCluster:
		s.clusters = append(s.clusters, clusterPos{pos: pos - s.segData, tc: -1})
		s.cur = &s.clusters[len(s.clusters)-1]
		if size == unknownSize {
			// An unknown-size cluster ends where the next top-level
			// element starts: carry on at the same level.
			s.end = data
			return data, nil
		}
		if err := s.walk(data, end, id); err != nil {
			return 0, err
		}
	case idInfo, idBlockGroup:
		if err := s.walk(data, end, id); err != nil {
			return 0, err
		}
	default:
		if err := s.leaf(id, pos, data, end, parent); err != nil {
			return 0, err
		}
	}
	s.end = end
	return end, nil
}

// leaf reads the elements Repair needs the content of.
func (s *scanner) leaf(id uint32, pos, data, end int64, parent uint32) error {
	switch id {
	case idTimecodeSc:
		if v := s.uint(data, end); v > 0 {
			s.scale = v
		}
	case idDuration:
		s.durPos, s.durLen = data, end-data
	case idVoid:
		if len(s.clusters) == 0 && s.voidPos == 0 && parent == idSegment {
			s.voidPos, s.voidLen = pos, end-pos
		}
	case idCues:
		s.hasCues = true
	case idTimecode:
		if s.cur != nil {
			s.cur.tc = int64(s.uint(data, end))
		}
	case idSimpleBlock, idBlock:
		s.block(data, end)
	}
	return nil
}

// block reads a block's track number and relative timecode (RFC 9559
// 10.1) and moves the latest time.
func (s *scanner) block(data, end int64) {
	if s.cur == nil || s.cur.tc < 0 {
		return
	}
	var b [12]byte
	n, _ := s.r.ReadAt(b[:min(int64(len(b)), end-data)], data)
	track, l := readVint(b[:n], true)
	if l <= 0 || n < l+3 {
		return
	}
	if s.cur.track == 0 {
		s.cur.track = uint64(track)
	}
	rel := int64(int16(binary.BigEndian.Uint16(b[l:])))
	s.lastTC = max(s.lastTC, s.cur.tc+rel)
	if s.onBlock != nil {
		s.onBlock(len(s.clusters)-1, uint64(track), s.cur.tc+rel, b[l+2]&0x80 != 0)
	}
}

func (s *scanner) uint(data, end int64) uint64 {
	if end-data > 8 {
		return 0
	}
	var b [8]byte
	n, _ := s.r.ReadAt(b[8-(end-data):], data)
	if int64(n) != end-data {
		return 0
	}
	return binary.BigEndian.Uint64(b[:])
}

// header reads the ID and size of the element at pos and returns where
// its data starts.
func (s *scanner) header(pos int64) (id uint32, size, data int64, err error) {
	var b [12]byte
	n, _ := s.r.ReadAt(b[:], pos)
	idv, il := readVint(b[:n], false)
	if il <= 0 || il > 4 {
		return 0, 0, 0, ErrCorrupt
	}
	sz, sl := readVint(b[il:n], true)
	if sl <= 0 {
		return 0, 0, 0, ErrCorrupt
	}
	if sz == int64(1)<<(7*sl)-1 {
		sz = unknownSize
	}
	return uint32(idv), sz, pos + int64(il+sl), nil
}

// readVint reads an EBML variable-length integer (RFC 8794 4); strip
// removes the length marker (sizes, track numbers) or keeps it (IDs).
func readVint(b []byte, strip bool) (int64, int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	l := 1
	for b[0]&(0x80>>(l-1)) == 0 {
		l++
	}
	if l > len(b) || l > 8 {
		return 0, 0
	}
	v := int64(b[0])
	if strip {
		v &= int64(0xff >> l)
	}
	for i := 1; i < l; i++ {
		v = v<<8 | int64(b[i])
	}
	return v, l
}

// writeDuration stores the duration in the existing Duration element
// (a float, RFC 9559 5.1.2.3, in timecode-scale units).
func (s *scanner) writeDuration(f io.WriterAt) error {
	var b []byte
	switch s.durLen {
	case 8:
		b = binary.BigEndian.AppendUint64(nil, math.Float64bits(float64(s.lastTC)))
	case 4:
		b = binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(s.lastTC)))
	default:
		return fmt.Errorf("%w: no Duration element to set", ErrCorrupt)
	}
	if _, err := f.WriteAt(b, s.durPos); err != nil {
		return fmt.Errorf("recording: repair: %w", err)
	}
	return nil
}

type repairCueTrack struct {
	CueTrack           uint64 `ebml:"CueTrack"`
	CueClusterPosition uint64 `ebml:"CueClusterPosition"`
}

type repairCuePoint struct {
	CueTime           uint64           `ebml:"CueTime"`
	CueTrackPositions []repairCueTrack `ebml:"CueTrackPositions"`
}

type repairCues struct {
	Cues struct {
		CuePoint []repairCuePoint `ebml:"CuePoint"`
	} `ebml:"Cues"`
}

// writeCues fills the Void reserved at the file start with Cues pointing
// at every cluster (halving the points until they fit), as the writer
// would have on a clean stop. The SeekHead already points there.
func (s *scanner) writeCues(f io.WriterAt) error {
	if s.hasCues || s.voidLen < 9 {
		return nil
	}
	var pts []repairCuePoint
	for _, c := range s.clusters {
		if c.tc >= 0 && c.track != 0 {
			pts = append(pts, repairCuePoint{CueTime: uint64(c.tc),
				CueTrackPositions: []repairCueTrack{{CueTrack: c.track, CueClusterPosition: uint64(c.pos)}}})
		}
	}
	for len(pts) > 0 {
		var cues repairCues
		cues.Cues.CuePoint = pts
		var buf bytes.Buffer
		if err := ebml.Marshal(&cues, &buf); err != nil {
			return fmt.Errorf("recording: repair cues: %w", err)
		}
		if rest := s.voidLen - int64(buf.Len()); rest == 0 || rest >= 9 {
			if rest > 0 {
				buf.Write(voidElement(rest))
			}
			_, err := f.WriteAt(buf.Bytes(), s.voidPos)
			return errors.Join(err)
		}
		if len(pts) == 1 {
			return nil // not one point fits: the file plays without Cues
		}
		half := pts[:0:0]
		for i := 0; i < len(pts); i += 2 {
			half = append(half, pts[i])
		}
		pts = half
	}
	return nil
}

// voidElement is a Void element of exactly n (>= 9) bytes, with an 8-byte
// size so any n fits.
func voidElement(n int64) []byte {
	b := make([]byte, n)
	b[0] = idVoid
	b[1] = 0x01
	binary.BigEndian.PutUint64(b[1:9], uint64(n-9))
	b[1] = 0x01
	return b
}
