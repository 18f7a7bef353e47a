package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Encoding versions. A decoder rejects versions it does not know rather than
// guess.
const (
	seriesVersion    = 1
	partitionVersion = 1
)

// ErrVersion is returned, wrapped, when encoded state has a version this
// build cannot read.
var ErrVersion = errors.New("window: unknown encoding version")

// ErrCorrupt is returned, wrapped, when encoded state is truncated or
// malformed.
var ErrCorrupt = errors.New("window: corrupt encoding")

// AppendBinary appends the encoding of the series' state to b: everything
// but the ring of closed buckets, which callers store bucket by bucket (see
// Changes and AppendBucket). It implements encoding.BinaryAppender and
// never fails.
func (s *Series) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, seriesVersion)
	b = binary.AppendUvarint(b, uint64(len(s.id)))
	b = append(b, s.id...)
	b = binary.AppendVarint(b, s.first)
	b = binary.AppendVarint(b, s.closed)
	b = binary.AppendVarint(b, s.Seq)
	b = binary.AppendUvarint(b, uint64(len(s.open)))
	for _, o := range s.open {
		b = binary.AppendVarint(b, o.idx)
		b = appendF64(b, o.qty)
		b = appendF64(b, o.priceSum)
		b = binary.AppendUvarint(b, uint64(o.priceN))
		b = binary.AppendUvarint(b, uint64(o.promoN))
		b = binary.AppendUvarint(b, uint64(o.n))
	}
	b = appendF32(b, s.lastPrice)
	b = appendF64(b, s.level)
	b = appendF64(b, s.trend)
	b = binary.AppendVarint(b, s.buckets)
	b = binary.AppendVarint(b, s.zeros)
	b = binary.AppendVarint(b, s.sinceSale)
	b = binary.AppendUvarint(b, uint64(len(s.season)))
	for i, v := range s.season {
		b = appendF64(b, v)
		b = binary.AppendUvarint(b, uint64(s.seasonN[i]))
	}
	return b, nil
}

// bucketSize is the size of an encoded Bucket.
const bucketSize = 16

// StoredActivity returns the activity (see Series.Activity) of a series
// whose state AppendBinary encoded as b, without decoding its seasonal
// profile; the state was stored with its closed buckets, so Stored spans
// the last history of them.
func StoredActivity(b []byte, history int) (Activity, error) {
	d := decoder{b: b}
	var s Series
	if err := d.head(&s); err != nil {
		return Activity{}, err
	}
	return s.activity(s.closed, int64(history)), nil
}

// head decodes a series state's fields before its seasonal profile into
// s: all but the ring and the profile.
func (d *decoder) head(s *Series) error {
	if v := d.byte(); d.err == nil && v != seriesVersion {
		return fmt.Errorf("%w: series version %d (this build reads %d)", ErrVersion, v, seriesVersion)
	}
	s.id = string(d.bytes(int(d.uvarint())))
	s.first = d.varint()
	s.closed = d.varint()
	s.Seq = d.varint()
	nopen := d.count(20)
	for range nopen {
		s.open = append(s.open, openBucket{
			idx:      d.varint(),
			qty:      d.f64(),
			priceSum: d.f64(),
			priceN:   uint32(d.uvarint()),
			promoN:   uint32(d.uvarint()),
			n:        uint32(d.uvarint()),
		})
	}
	s.lastPrice = d.f32()
	s.level = d.f64()
	s.trend = d.f64()
	s.buckets = d.varint()
	s.zeros = d.varint()
	s.sinceSale = d.varint()
	if d.err != nil {
		return fmt.Errorf("window: decoding series: %w", d.err)
	}
	return nil
}

// AppendBucket appends the encoding of a closed bucket to dst.
func AppendBucket(dst []byte, b Bucket) []byte {
	dst = appendF64(dst, b.Qty)
	dst = appendF32(dst, b.Price)
	return appendF32(dst, b.Promo)
}

// DecodeBucket decodes a bucket encoded by AppendBucket.
func DecodeBucket(b []byte) (Bucket, error) {
	if len(b) != bucketSize {
		return Bucket{}, fmt.Errorf("%w: bucket of %d bytes, want %d", ErrCorrupt, len(b), bucketSize)
	}
	d := decoder{b: b}
	return Bucket{Qty: d.f64(), Price: d.f32(), Promo: d.f32()}, nil
}

// IndexedBucket is a closed bucket with its index, as stored by callers.
type IndexedBucket struct {
	// Index is the bucket index.
	Index int64
	// Bucket is the bucket.
	Bucket Bucket
}

// DecodeSeries decodes a series' state encoded by AppendBinary, with its
// stored closed buckets in increasing index order, and adds it to the
// partition, replacing a series with the same id. Buckets too old for the
// partition's History are skipped, so state written with a longer History
// loads; a missing recent bucket is an error. A seasonal period that
// differs from the partition's is an error.
func (p *Partition) DecodeSeries(b []byte, ring []IndexedBucket) (*Series, error) {
	d := decoder{b: b}
	var h Series
	if err := d.head(&h); err != nil {
		return nil, err
	}
	s := p.newSeries(h.id, h.first)
	h.serial, h.ring, h.season, h.seasonN, h.saved = s.serial, s.ring, s.season, s.seasonN, h.closed
	*s = h
	id := s.id
	if period := d.count(9); d.err == nil && period != len(s.season) {
		return nil, fmt.Errorf("window: series %q has seasonal period %d, partition uses %d", id, period, len(s.season))
	}
	for i := range s.season {
		s.season[i] = d.f64()
		s.seasonN[i] = uint32(d.uvarint())
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("window: decoding series: %w", d.err)
	}
	oldest := max(s.closed-int64(len(s.ring))+1, s.first)
	next := oldest
	for _, rb := range ring {
		if rb.Index < next {
			continue
		}
		if rb.Index != next || rb.Index > s.closed {
			break
		}
		s.push(rb.Bucket)
		next++
	}
	if next != s.closed+1 {
		return nil, fmt.Errorf("%w: series %q lacks closed bucket %d", ErrCorrupt, id, next)
	}
	if old := p.byID[id]; old != nil {
		pos := old.pos
		*old = *s
		old.pos = pos
		return old, nil
	}
	p.insert(s)
	return s, nil
}

// AppendBinary appends the partition-level state (watermark and closed
// buckets, plus the bucket spec it was built with) to b. Series are encoded
// separately. It implements encoding.BinaryAppender and never fails.
func (p *Partition) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, partitionVersion, byte(p.cfg.Width))
	loc := p.spec.loc.String()
	b = binary.AppendUvarint(b, uint64(len(loc)))
	b = append(b, loc...)
	b = binary.AppendVarint(b, p.maxEvent)
	b = binary.AppendVarint(b, p.lastClosed)
	return b, nil
}

// UnmarshalBinary restores partition-level state encoded by AppendBinary. It
// fails if the state was written with another bucket width or time zone.
func (p *Partition) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != partitionVersion {
		return fmt.Errorf("%w: partition version %d (this build reads %d)", ErrVersion, v, partitionVersion)
	}
	w := Width(d.byte())
	loc := string(d.bytes(int(d.uvarint())))
	maxEvent := d.varint()
	lastClosed := d.varint()
	if d.err != nil {
		return fmt.Errorf("window: decoding partition state: %w", d.err)
	}
	if w != p.cfg.Width || loc != p.spec.loc.String() {
		return fmt.Errorf("window: state was written with %v buckets in %s, configured %v in %s", w, loc, p.cfg.Width, p.spec.loc)
	}
	p.maxEvent = maxEvent
	if maxEvent != noEvent {
		p.setLastClosed(lastClosed)
	}
	return nil
}

func appendF64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendF32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

// decoder reads an encoding, remembering the first error so call sites stay
// linear.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads an element count and checks it against the bytes left, given
// a lower bound on each element's size, so corrupt input cannot make the
// decoder allocate without bound.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) f64() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) f32() float32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	return v
}
