package pipeline

import (
	"encoding/binary"
	"fmt"
)

// Every key trendstream stores is laid out in this file. A partition's
// keys start with 'p' and the big-endian partition number, so partitions
// iterate in order and one prefix deletion removes a partition; then comes
// a kind byte naming the family of the key. Global index entries start
// with 'i'.
//
//	p | partition | 'm'                          commit point: next offset, window state
//	p | partition | 's' | series id              series state
//	p | partition | 'b' | series id | 0 | index  a closed bucket of a series
//	p | partition | 'f' | series id              latest published forecast record
//	p | partition | 'c' | series id              ensemble state of a series
//	p | partition | 'e' | series id              decision state of a series: trend noise, replenishment errors
//	p | partition | 'n' | series id              latest replenishment plan record of a series
//	p | partition | 'r'                          replenishment calibration of the partition
//	p | partition | 't' | store                  latest trends record of a store's series in the partition
//	p | partition | 'o' | series id              promotion-lift state of a series (plans.go)
//	p | partition | 'q'                          pooled promotion lift of the partition
//	p | partition | 'd' | slot | sequence        a batch of deduplication ids
//	p | partition | 'x' | learner name           a learner's checkpoint
//	p | partition | 'x' | learner name | "/mix"  a learner's last mixing round (mix.go)
//	p | partition | 'l'                          restore position in the changelog
//	p | partition | 'g'                          changelog fence: a new owner's generation
//	i | series id                                partition holding the series
//	g                                            consumer-group member of the store's last process
type kind byte

const (
	kindMeta      kind = 'm'
	kindSeries    kind = 's'
	kindBucket    kind = 'b'
	kindForecast  kind = 'f'
	kindSelect    kind = 'c'
	kindDecision  kind = 'e'
	kindPlan      kind = 'n'
	kindCalib     kind = 'r'
	kindTrends    kind = 't'
	kindPromo     kind = 'o'
	kindPromoPool kind = 'q'
	kindDedup     kind = 'd'
	kindModel     kind = 'x'
	kindChangelog kind = 'l'
	kindFence     kind = 'g'
)

const (
	partitionTag = 'p'
	indexTag     = 'i'
	memberTag    = 'g'
	// partitionKeyLen is the length of a partition's key prefix before
	// the kind byte.
	partitionKeyLen = 5
)

// PartitionPrefix appends the prefix of every key of partition p to dst.
func PartitionPrefix(dst []byte, p int32) []byte {
	dst = append(dst, partitionTag)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// KeyPartition returns the partition whose keyspace holds key, or false
// for a global index entry.
func KeyPartition(key []byte) (int32, bool) {
	if len(key) < partitionKeyLen || key[0] != partitionTag {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(key[1:partitionKeyLen])), true
}

// keyKind returns the kind of a partition key, or 0.
func keyKind(key []byte) kind {
	if len(key) <= partitionKeyLen || key[0] != partitionTag {
		return 0
	}
	return kind(key[partitionKeyLen])
}

func kindPrefix(dst []byte, p int32, k kind) []byte {
	return append(PartitionPrefix(dst, p), byte(k))
}

func key(dst []byte, p int32, k kind, name []byte) []byte {
	return append(kindPrefix(dst, p, k), name...)
}

// slotKey appends a key under kind k in partition p named by a slot number
// and a sequence number, both big-endian so keys iterate in numeric order.
func slotKey(dst []byte, p int32, k kind, slot int64, seq uint64) []byte {
	dst = kindPrefix(dst, p, k)
	dst = binary.BigEndian.AppendUint64(dst, uint64(slot)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func parseSlotKey(key []byte) (slot int64, seq uint64, err error) {
	if len(key) != partitionKeyLen+1+16 {
		return 0, 0, fmt.Errorf("pipeline: slot key %x has %d bytes, want 22", key, len(key))
	}
	slot = int64(binary.BigEndian.Uint64(key[6:]) ^ (1 << 63))
	return slot, binary.BigEndian.Uint64(key[14:]), nil
}

// bucketKey appends the key of a series' bucket in partition p to dst: the
// series name, a zero byte and the big-endian bucket index, so a series'
// buckets iterate in index order. The name must not contain a zero byte.
func bucketKey(dst []byte, p int32, name []byte, idx int64) []byte {
	dst = append(key(dst, p, kindBucket, name), 0)
	return binary.BigEndian.AppendUint64(dst, uint64(idx)^(1<<63))
}

// parseBucketKey returns the bucket index of a key built by bucketKey.
func parseBucketKey(key []byte) (idx int64, err error) {
	if len(key) < partitionKeyLen+1+9 || key[len(key)-9] != 0 {
		return 0, fmt.Errorf("pipeline: %x is not a bucket key", key)
	}
	return int64(binary.BigEndian.Uint64(key[len(key)-8:]) ^ (1 << 63)), nil
}

// PlanKey appends the key of the latest replenishment plan record
// published for series id of partition p, which the HTTP API serves, to
// dst.
func PlanKey(dst []byte, p int32, id string) []byte {
	return append(kindPrefix(dst, p, kindPlan), id...)
}

// TrendsKey appends the key of the latest trends record published for a
// store's series of partition p to dst; TrendsPrefix the prefix of every
// store's.
func TrendsKey(dst []byte, p int32, store string) []byte {
	return append(kindPrefix(dst, p, kindTrends), store...)
}

// TrendsPrefix appends the prefix of partition p's trends records to dst.
func TrendsPrefix(dst []byte, p int32) []byte { return kindPrefix(dst, p, kindTrends) }

// MemberKey appends the key under which a driver keeps the consumer-group
// member id its process joined as, to dst.
func MemberKey(dst []byte) []byte { return append(dst, memberTag) }

// indexKey appends the key of the global index entry of a series to dst.
func indexKey(dst []byte, name []byte) []byte {
	return append(append(dst, indexTag), name...)
}

func appendPartition(dst []byte, p int32) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

func parsePartition(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("pipeline: index value %x has %d bytes, want 4", b, len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}
