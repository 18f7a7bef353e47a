package pipeline

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/trendstream/trendstream/window"
)

// Store reads committed state. *state.DB implements it.
type Store interface {
	// Get calls fn with the value stored under key and reports whether
	// the key exists. The value is valid only during fn.
	Get(key []byte, fn func(value []byte) error) (found bool, err error)
	// Scan calls fn, in key order, for every key with the prefix. Key and
	// value are valid only during fn.
	Scan(prefix []byte, fn func(key, value []byte) error) error
	// ScanFrom is Scan from the first key with the prefix that is not
	// before from on.
	ScanFrom(prefix, from []byte, fn func(key, value []byte) error) error
}

// Writes collects the writes of one commit: ordinary writes in order, and
// final writes that form its commit point and are applied last and
// atomically. *state.Batch implements it (see its documentation for why
// ordinary writes must be idempotent under replay). Implementations copy
// keys and values.
type Writes interface {
	Set(key, value []byte)
	Delete(key []byte)
	SetFinal(key, value []byte, ttl time.Duration)
	DeleteFinal(key []byte)
}

// commitVersion is the encoding version of a partition's commit point.
const commitVersion = 1

// CommitPointKey appends the key of partition p's commit point to dst.
func CommitPointKey(dst []byte, p int32) []byte { return key(dst, p, kindMeta, nil) }

// CommitOffset returns the next input offset of a commit point value of
// partition p.
func CommitOffset(p int32, v []byte) (int64, error) {
	if len(v) < 1 || v[0] != commitVersion {
		return 0, fmt.Errorf("pipeline: partition %d commit point has unknown encoding version %d (this build reads %d)", p, firstByte(v), commitVersion)
	}
	off, n := binary.Varint(v[1:])
	if n <= 0 {
		return 0, fmt.Errorf("pipeline: partition %d commit point is corrupt", p)
	}
	return off, nil
}

// LocalOffset returns the next input offset of the commit point st holds
// for partition p, or -1 when it holds none.
func LocalOffset(st Store, p int32) (int64, error) {
	next := int64(-1)
	_, err := st.Get(CommitPointKey(nil, p), func(v []byte) (err error) {
		next, err = CommitOffset(p, v)
		return err
	})
	return next, err
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// RestorePositionKey appends the key under which a changelog driver keeps
// how far a restore of partition p has read the changelog.
func RestorePositionKey(dst []byte, p int32) []byte { return key(dst, p, kindChangelog, nil) }

// FenceKey appends the key of the changelog record with which a new owner
// of partition p announces its generation. It is never stored.
func FenceKey(dst []byte, p int32) []byte { return key(dst, p, kindFence, nil) }

// Restored is what ApplyRestored learned from a record.
type Restored struct {
	// CommitPoint is set when the record was a commit point; Next is then
	// the input offset it commits, -1 when it deleted the commit point.
	CommitPoint bool
	Next        int64
}

// ApplyRestored adds to w the write a changelog record of partition p
// stands for: an empty value deletes the key, deduplication records expire
// after dedupTTL, and a series state also restores the series' global index
// entry, which changelogs do not carry, and its deletion (a retired
// series) deletes the entry. Commit points and deduplication records, set
// or deleted, are final writes, as AppendState makes them: written last,
// so a restore that Writes splits never stores a commit point without the
// deduplication records before it, and a deletion is never overtaken by an
// earlier set of the same key.
func ApplyRestored(w Writes, p int32, k, value []byte, dedupTTL time.Duration) (Restored, error) {
	kd := keyKind(k)
	final := kd == kindMeta || kd == kindDedup
	switch {
	case len(value) == 0 && final:
		w.DeleteFinal(k)
		return Restored{CommitPoint: kd == kindMeta, Next: -1}, nil
	case len(value) == 0:
		w.Delete(k)
		if kd == kindSeries {
			w.Delete(indexKey(nil, k[len(kindPrefix(nil, p, kindSeries)):]))
		}
		return Restored{}, nil
	case kd == kindDedup:
		w.SetFinal(k, value, dedupTTL)
	case final:
		w.SetFinal(k, value, 0)
	default:
		w.Set(k, value)
	}
	switch kd {
	case kindMeta:
		next, err := CommitOffset(p, value)
		return Restored{CommitPoint: true, Next: next}, err
	case kindSeries:
		name := k[len(kindPrefix(nil, p, kindSeries)):]
		w.Set(indexKey(nil, name), appendPartition(nil, p))
	}
	return Restored{}, nil
}

// SeriesPartition returns the partition the global index says holds series
// id.
func SeriesPartition(st Store, id []byte) (p int32, found bool, err error) {
	found, err = st.Get(indexKey(nil, id), func(v []byte) (err error) {
		p, err = parsePartition(v)
		return err
	})
	return p, found, err
}

// ScanSeries calls fn, in id order, with every series id in the global
// index that starts with prefix and the partition holding it, until fn
// returns an error, which ScanSeries returns. The id is valid only during
// fn. The web console's series search uses it.
func ScanSeries(st Store, prefix []byte, fn func(id []byte, p int32) error) error {
	skip := len(indexKey(nil, nil))
	return st.Scan(indexKey(nil, prefix), func(k, v []byte) error {
		p, err := parsePartition(v)
		if err != nil {
			return err
		}
		return fn(k[skip:], p)
	})
}

// ReadSeries decodes series id of partition p, with its closed buckets,
// from st into part.
func ReadSeries(st Store, p int32, part *window.Partition, id []byte) (s *window.Series, found bool, err error) {
	found, err = st.Get(key(nil, p, kindSeries, id), func(v []byte) (err error) {
		s, _, err = storedSeries(st, p, part, id, v, nil)
		return err
	})
	return s, found, err
}

// LatestForecast calls fn with the latest forecast record published for
// series id of partition p, if there is one: the JSON bytes the forecast
// topic received, rendered from the compact form the store keeps (see
// Encoder.AppendCompact). The record is valid only during fn.
func LatestForecast(st Store, p int32, id []byte, fn func(record []byte) error) (bool, error) {
	return st.Get(key(nil, p, kindForecast, id), func(v []byte) error {
		var rd Renderer
		rec, err := rd.Append(nil, string(id), v)
		if err != nil {
			return fmt.Errorf("pipeline: latest forecast of partition %d: %w", p, err)
		}
		return fn(rec)
	})
}

// storedSeries decodes into part the series id of partition p whose state
// st stores as v, with its closed buckets from st. ring is scratch space,
// returned for reuse.
func storedSeries(st Store, p int32, part *window.Partition, id, v []byte, ring []window.IndexedBucket) (*window.Series, []window.IndexedBucket, error) {
	ring = ring[:0]
	err := st.Scan(append(key(nil, p, kindBucket, id), 0), func(k, v []byte) error {
		idx, err := parseBucketKey(k)
		if err != nil {
			return err
		}
		bk, err := window.DecodeBucket(v)
		ring = append(ring, window.IndexedBucket{Index: idx, Bucket: bk})
		return err
	})
	if err != nil {
		return nil, ring, err
	}
	s, err := part.DecodeSeries(v, ring)
	return s, ring, err
}
