package pipeline

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// idHash is a 128-bit hash of an event id: two independent 64-bit xxhash
// sums. Collisions are negligible (about 1e-20 for ten million live ids),
// and a fixed-size key keeps the set compact.
type idHash [2]uint64

// dedupSlot is the event-time granularity of deduplication bookkeeping.
const dedupSlot = int64(time.Hour / time.Second)

// dedupSet remembers the event ids accepted within a horizon of event time
// so that copies are counted once. Ids are kept in memory and persisted as
// one record per batch (see appendPending), expired by event time as the
// watermark moves. A dedupSet is owned by its partition's goroutine.
type dedupSet struct {
	horizon int64 // seconds of event time an id is remembered
	seen    map[idHash]int64
	digest  *xxhash.Digest

	pending []byte // encoded ids accepted since the last flush
	maxSlot int64  // highest slot among pending ids

	records []dedupRecord // persisted records, oldest first
	swept   int64         // slot before which ids were last swept
}

// dedupRecord is a persisted batch of ids: its key names its highest slot.
type dedupRecord struct {
	slot int64
	seq  uint64
}

func newDedupSet(horizon time.Duration) *dedupSet {
	return &dedupSet{
		horizon: int64(horizon / time.Second),
		seen:    make(map[idHash]int64),
		digest:  xxhash.NewWithSeed(0x9e3779b97f4a7c15),
		maxSlot: minSlot,
		swept:   minSlot,
	}
}

const minSlot = -1 << 62

func (d *dedupSet) hash(id []byte) idHash {
	d.digest.Reset()
	d.digest.Write(id)
	return idHash{xxhash.Sum64(id), d.digest.Sum64()}
}

func slotOf(t time.Time) int64 { return t.Truncate(time.Hour).Unix() / dedupSlot }

// contains reports whether the id with hash h was accepted before.
func (d *dedupSet) contains(h idHash) bool {
	_, ok := d.seen[h]
	return ok
}

// add remembers the id with hash h, accepted with event time t, and queues
// it for persistence.
func (d *dedupSet) add(h idHash, t time.Time) {
	slot := slotOf(t)
	d.seen[h] = slot
	d.pending = binary.LittleEndian.AppendUint64(d.pending, h[0])
	d.pending = binary.LittleEndian.AppendUint64(d.pending, h[1])
	d.pending = binary.AppendVarint(d.pending, slot)
	d.maxSlot = max(d.maxSlot, slot)
}

// len returns the number of ids remembered.
func (d *dedupSet) len() int { return len(d.seen) }

// flush returns the pending ids as one record to persist under the given
// sequence number (the batch's first offset) and forgets them as pending.
// The value is valid until the next add. ok is false when nothing is
// pending.
func (d *dedupSet) flush(seq uint64) (rec dedupRecord, value []byte, ok bool) {
	if len(d.pending) == 0 {
		return dedupRecord{}, nil, false
	}
	rec = dedupRecord{slot: d.maxSlot, seq: seq}
	value = d.pending
	d.pending = d.pending[:0]
	d.maxSlot = minSlot
	d.records = append(d.records, rec)
	return rec, value, true
}

// expire forgets ids whose slot is older than the horizon before the
// watermark and returns the persisted records that hold only such ids, for
// deletion. Sweeping memory costs a pass over the set, so it runs once per
// eighth of the horizon.
func (d *dedupSet) expire(watermark time.Time) []dedupRecord {
	cutoff := slotOf(watermark) - d.horizonSlots()
	if cutoff <= d.swept+max(d.horizonSlots()/8, 1) {
		return nil
	}
	d.swept = cutoff
	for h, slot := range d.seen {
		if slot < cutoff {
			delete(d.seen, h)
		}
	}
	var old []dedupRecord
	keep := d.records[:0]
	for _, r := range d.records {
		if r.slot < cutoff {
			old = append(old, r)
		} else {
			keep = append(keep, r)
		}
	}
	d.records = keep
	return old
}

func (d *dedupSet) horizonSlots() int64 { return (d.horizon + dedupSlot - 1) / dedupSlot }

// load restores a persisted record, skipping ids already expired as of
// watermark.
func (d *dedupSet) load(rec dedupRecord, value []byte, watermark time.Time, known bool) error {
	cutoff := int64(minSlot)
	if known {
		cutoff = slotOf(watermark) - d.horizonSlots()
	}
	for len(value) > 0 {
		if len(value) < 17 {
			return fmt.Errorf("pipeline: dedup record %d/%d is truncated", rec.slot, rec.seq)
		}
		h := idHash{binary.LittleEndian.Uint64(value), binary.LittleEndian.Uint64(value[8:])}
		slot, n := binary.Varint(value[16:])
		if n <= 0 {
			return fmt.Errorf("pipeline: dedup record %d/%d is corrupt", rec.slot, rec.seq)
		}
		value = value[16+n:]
		if slot >= cutoff {
			d.seen[h] = slot
		}
	}
	d.records = append(d.records, rec)
	return nil
}
