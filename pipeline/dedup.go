package pipeline

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// idHash is a 128-bit hash of an event id: two independent 64-bit xxhash
// sums. Collisions are negligible (about 1e-20 for ten million live ids),
// and a fixed-size key keeps the set compact.
type idHash [2]uint64

// dedupSlot is the event-time granularity of deduplication bookkeeping.
const dedupSlot = int64(time.Hour / time.Second)

// dedupDeletes bounds the expired dedup records a commit deletes, so that
// its final transaction stays small however many expire at once; the rest
// go in the following commits. A steady stream expires about one record
// per commit.
const dedupDeletes = 1024

// dedupSet remembers the event ids accepted within a horizon of event time
// so that copies are counted once. Ids are kept in memory and persisted as
// one record per commit (see flush). Both expire by event time only: an id
// is forgotten once the watermark is more than the horizon past its slot,
// and a record once all its ids are, at most dedupDeletes records per
// commit. At most maxIDs ids are kept: beyond, the ids of the oldest slots
// are forgotten early (see shrink). A dedupSet is owned by its partition's
// goroutine.
type dedupSet struct {
	horizon int64 // seconds of event time an id is remembered
	maxIDs  int   // ids kept at most; 0 keeps every id within the horizon
	seen    map[idHash]int64
	digest  *xxhash.Digest

	pending []byte // encoded ids accepted since the last flush
	maxSlot int64  // highest slot among pending ids

	records []dedupRecord // persisted records, by slot and sequence
	doomed  []dedupRecord // persisted records holding only forgotten ids, to delete
	swept   int64         // slot before which memory was last swept

	forgotten int64         // ids forgotten early to stay under maxIDs
	hist      map[int64]int // scratch of shrink
	slots     []int64       // scratch of shrink
}

// dedupRecord is a persisted batch of ids: its key names its highest slot.
type dedupRecord struct {
	slot int64
	seq  uint64
}

func compareRecords(a, b dedupRecord) int {
	return cmp.Or(cmp.Compare(a.slot, b.slot), cmp.Compare(a.seq, b.seq))
}

func newDedupSet(horizon time.Duration, maxIDs int) *dedupSet {
	return &dedupSet{
		horizon: int64(horizon / time.Second),
		maxIDs:  maxIDs,
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
	if d.maxIDs > 0 && len(d.seen) > d.maxIDs {
		d.shrink()
	}
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
	d.insert(rec)
	return rec, value, true
}

// insert adds a persisted record in order; records mostly arrive in it.
func (d *dedupSet) insert(rec dedupRecord) {
	if n := len(d.records); n == 0 || compareRecords(d.records[n-1], rec) < 0 {
		d.records = append(d.records, rec)
		return
	}
	i, found := slices.BinarySearchFunc(d.records, rec, compareRecords)
	if !found {
		d.records = slices.Insert(d.records, i, rec)
	}
}

// expire forgets the persisted records whose ids are all older than the
// horizon before the watermark, queueing them for deletion, and the ids
// themselves. Sweeping memory costs a pass over the set, so it runs once
// per eighth of the horizon; until then expired ids still count as seen,
// which only makes deduplication reach a little further back.
func (d *dedupSet) expire(watermark time.Time) {
	cutoff := slotOf(watermark) - d.horizonSlots()
	d.doom(cutoff)
	if cutoff <= d.swept+max(d.horizonSlots()/8, 1) {
		return
	}
	d.swept = cutoff
	for h, slot := range d.seen {
		if slot < cutoff {
			delete(d.seen, h)
		}
	}
}

// doom moves the persisted records whose ids are all in slots before
// cutoff to the deletion queue.
func (d *dedupSet) doom(cutoff int64) {
	n, _ := slices.BinarySearchFunc(d.records, dedupRecord{slot: cutoff}, compareRecords)
	if n == 0 {
		return
	}
	d.doomed = append(d.doomed, d.records[:n]...)
	d.records = slices.Delete(d.records, 0, n)
}

// drain returns up to n records to delete from the store, forgetting them.
// The slice is valid until the next drain.
func (d *dedupSet) drain(n int) []dedupRecord {
	n = min(n, len(d.doomed))
	out := d.doomed[len(d.doomed)-n:]
	d.doomed = d.doomed[:len(d.doomed)-n]
	return out
}

// shrink brings the set back to seven eighths of maxIDs by forgetting the
// ids of its oldest slots, all of them if even the newest slot holds more.
// A copy of a forgotten id that arrives while its bucket is still open
// counts again: the cap trades exactness for bounded memory. It costs two
// passes over the set and frees an eighth of it, a constant amortized
// cost per id added.
func (d *dedupSet) shrink() {
	if d.hist == nil {
		d.hist = make(map[int64]int)
	}
	for _, slot := range d.seen {
		d.hist[slot]++
	}
	d.slots = slices.AppendSeq(d.slots[:0], maps.Keys(d.hist))
	slices.Sort(d.slots)
	excess := len(d.seen) - (d.maxIDs - d.maxIDs/8)
	cutoff := d.slots[len(d.slots)-1] + 1
	for _, slot := range d.slots {
		if excess <= 0 {
			cutoff = slot
			break
		}
		excess -= d.hist[slot]
	}
	clear(d.hist)
	n := len(d.seen)
	for h, slot := range d.seen {
		if slot < cutoff {
			delete(d.seen, h)
		}
	}
	d.forgotten += int64(n - len(d.seen))
	d.doom(cutoff)
}

func (d *dedupSet) horizonSlots() int64 { return (d.horizon + dedupSlot - 1) / dedupSlot }

// load restores a persisted record, skipping ids already expired as of
// watermark; a record holding only such ids is queued for deletion.
func (d *dedupSet) load(rec dedupRecord, value []byte, watermark time.Time, known bool) error {
	cutoff := int64(minSlot)
	if known {
		cutoff = slotOf(watermark) - d.horizonSlots()
	}
	if rec.slot < cutoff {
		d.doomed = append(d.doomed, rec)
		return nil
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
	d.insert(rec)
	if d.maxIDs > 0 && len(d.seen) > d.maxIDs {
		d.shrink()
	}
	return nil
}
