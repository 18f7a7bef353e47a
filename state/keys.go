package state

import (
	"encoding/binary"
	"fmt"
)

// Kind names a family of keys inside a partition's keyspace.
type Kind byte

// Key kinds. Callers decide what they store under each; state only lays the
// keys out.
const (
	// KindMeta holds a partition's commit point: input offset and watermark.
	KindMeta Kind = 'm'
	// KindSeries holds one entry per series.
	KindSeries Kind = 's'
	// KindBucket holds the closed buckets of each series, keyed by series
	// and big-endian bucket index (see BucketKey).
	KindBucket Kind = 'b'
	// KindForecast holds the latest forecast of each series.
	KindForecast Kind = 'f'
	// KindDedup holds deduplication records, keyed by a big-endian slot.
	KindDedup Kind = 'd'
	// KindModel holds a partition's model checkpoints.
	KindModel Kind = 'x'
	// KindSelect holds per-series ensemble state.
	KindSelect Kind = 'c'
	// KindChangelog records how far a partition restored from a changelog
	// has read it.
	KindChangelog Kind = 'l'
)

const (
	partitionTag = 'p'
	indexTag     = 'i'
)

// PartitionPrefix appends the prefix of partition p's keyspace to dst:
// 'p' followed by the big-endian partition number, so partitions iterate in
// order and one DeletePrefix removes a partition.
func PartitionPrefix(dst []byte, p int32) []byte {
	dst = append(dst, partitionTag)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// KindPrefix appends the prefix of every key of the given kind in
// partition p to dst.
func KindPrefix(dst []byte, p int32, k Kind) []byte {
	return append(PartitionPrefix(dst, p), byte(k))
}

// Key appends the key of name under kind k in partition p to dst.
func Key(dst []byte, p int32, k Kind, name []byte) []byte {
	return append(KindPrefix(dst, p, k), name...)
}

// SlotKey appends a key under kind k in partition p named by a slot number
// and a sequence number, both big-endian so keys iterate in numeric order
// for non-negative values.
func SlotKey(dst []byte, p int32, k Kind, slot int64, seq uint64) []byte {
	dst = KindPrefix(dst, p, k)
	dst = binary.BigEndian.AppendUint64(dst, uint64(slot)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// ParseSlotKey returns the slot and sequence numbers of a key built by
// SlotKey.
func ParseSlotKey(key []byte) (slot int64, seq uint64, err error) {
	if len(key) != 6+16 {
		return 0, 0, fmt.Errorf("state: slot key %x has %d bytes, want 22", key, len(key))
	}
	slot = int64(binary.BigEndian.Uint64(key[6:]) ^ (1 << 63))
	return slot, binary.BigEndian.Uint64(key[14:]), nil
}

// BucketKey appends the key of a series' bucket in partition p to dst: the
// series name, a zero byte and the big-endian bucket index, so a series'
// buckets iterate in index order. The name must not contain a zero byte.
func BucketKey(dst []byte, p int32, name []byte, idx int64) []byte {
	dst = append(Key(dst, p, KindBucket, name), 0)
	return binary.BigEndian.AppendUint64(dst, uint64(idx)^(1<<63))
}

// ParseBucketKey returns the series name and bucket index of a key built by
// BucketKey. The name aliases key.
func ParseBucketKey(key []byte) (name []byte, idx int64, err error) {
	if len(key) < 6+9 || key[len(key)-9] != 0 {
		return nil, 0, fmt.Errorf("state: %x is not a bucket key", key)
	}
	return key[6 : len(key)-9], int64(binary.BigEndian.Uint64(key[len(key)-8:]) ^ (1 << 63)), nil
}

// IndexKey appends the key of a global index entry for name to dst. The
// index maps a name, such as a series id, to the partition holding it.
func IndexKey(dst []byte, name []byte) []byte {
	return append(append(dst, indexTag), name...)
}

// AppendPartition appends a partition number as an index value.
func AppendPartition(dst []byte, p int32) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// ParsePartition decodes an index value written by AppendPartition.
func ParsePartition(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("state: index value %x has %d bytes, want 4", b, len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}
