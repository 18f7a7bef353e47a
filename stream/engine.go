package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// LatePolicy says what happens to an event whose bucket has already closed.
type LatePolicy string

// Late policies. Both count the event in trendstream_late_records_total.
const (
	// LateDeadLetter sends late events to the dead-letter topic.
	LateDeadLetter LatePolicy = "dlq"
	// LateDrop only counts them.
	LateDrop LatePolicy = "drop"
)

// Record is one input record.
type Record struct {
	// Offset is the record's offset in its partition.
	Offset int64
	// Key and Value are the record's key and payload.
	Key, Value []byte
}

// sink receives what processing a partition produces.
type sink interface {
	// deadLetter is called for each rejected record.
	deadLetter(rec *Record, reason Reason, detail string) error
	// wants reports whether forecasts made at a bucket's close are needed;
	// backtests only need those at evaluated origins.
	wants(bucket int64) bool
	// closed is called at each bucket close for every series that closed
	// it, with one forecast per forecaster in the order of the engine's
	// model names and the index of the one to publish, or with nil and -1
	// when the sink does not want the bucket's forecasts.
	closed(bucket int64, s *window.Series, fcs []*model.Forecast, pub int) error
}

// engineConfig is what an engine needs to know.
type engineConfig struct {
	window   window.Config
	limits   Limits
	late     LatePolicy
	dedup    time.Duration
	forecast *Forecasting
	clock    func() time.Time
	// maxSeries caps the series kept in memory; 0 keeps every series.
	// Only engines with a store (see load) may set it.
	maxSeries int
}

// counters are an engine's running totals; the task turns them into
// Prometheus metrics after each batch.
type counters struct {
	records   int64
	accepted  int64
	dupes     int64
	late      int64
	replayed  int64
	dlq       map[Reason]int64
	closes    int64
	forecasts int64
	evicted   int64
	revived   int64
}

// engine is the pure core of a partition task: it decodes records, drops
// duplicates, feeds the window and asks the models for forecasts at every
// bucket close. Kafka and Badger stay outside: the task feeds records in,
// writes the sink's outputs and commits the engine's state. Backtests drive
// the same engine from files. An engine is owned by one goroutine.
type engine struct {
	cfg   engineConfig
	part  *window.Partition
	dec   *Decoder
	dedup *dedupSet
	sink  sink
	ev    Event
	sale  window.Sale

	dirty   []*window.Series
	isDirty map[*window.Series]bool
	created []*window.Series // series first seen since the last commit
	models  *models
	now     time.Time
	cnt     counters
	expired []dedupRecord

	// Series evicted to bound memory live on in the store; store and p
	// are set by load. evicted holds those evicted since the last commit,
	// whose state the commit still writes, and spilled says whether the
	// store may hold series that memory does not.
	store   *state.DB
	p       int32
	evicted map[string]*window.Series
	spilled bool
	idle    []*window.Series
	ring    []window.IndexedBucket
}

func newEngine(cfg engineConfig, sink sink) (*engine, error) {
	part, err := window.NewPartition(cfg.window)
	if err != nil {
		return nil, err
	}
	dec, err := NewDecoder(cfg.limits)
	if err != nil {
		return nil, err
	}
	e := &engine{
		cfg:     cfg,
		part:    part,
		dec:     dec,
		dedup:   newDedupSet(cfg.dedup),
		sink:    sink,
		isDirty: make(map[*window.Series]bool),
		cnt:     counters{dlq: make(map[Reason]int64)},
		evicted: make(map[string]*window.Series),
	}
	if e.models, err = newModels(cfg.forecast, part.Spec()); err != nil {
		return nil, err
	}
	return e, nil
}

// beginBatch reads the clock once for the batch's future-time checks.
func (e *engine) beginBatch() { e.now = e.cfg.clock() }

// process handles one record. It returns an error only when the sink
// fails; bad records are the sink's dead letters, never errors.
func (e *engine) process(rec *Record) error {
	e.cnt.records++
	err := e.dec.Decode(rec.Key, rec.Value, e.now, &e.ev)
	if err != nil {
		var inv *InvalidError
		if !errors.As(err, &inv) {
			return err
		}
		return e.reject(rec, inv.Reason, inv.Detail)
	}
	ev := &e.ev
	h := e.dedup.hash(ev.ID)
	if e.dedup.contains(h) {
		e.cnt.dupes++
		return nil
	}
	s, err := e.series(rec.Key)
	if err != nil {
		return err
	}
	if s != nil && rec.Offset <= s.Seq {
		// Already applied before a crash that split a large commit: keep
		// the id so later copies are still caught, count nothing.
		e.cnt.replayed++
		e.dedup.add(h, ev.Time)
		return nil
	}
	e.sale = window.Sale{Time: ev.Time, Qty: ev.Qty, Price: ev.Price, Promo: ev.Promo}
	known := e.part.Len()
	s, err = e.part.Add(rec.Key, &e.sale)
	if errors.Is(err, window.ErrLate) {
		e.cnt.late++
		if e.cfg.late == LateDrop {
			return nil
		}
		wm, _ := e.part.Watermark()
		return e.reject(rec, ReasonLate, fmt.Sprintf("ts %s is in a bucket closed by watermark %s",
			ev.Time.Format(time.RFC3339), wm.Format(time.RFC3339)))
	}
	if err != nil {
		return err
	}
	e.cnt.accepted++
	if e.part.Len() > known {
		e.created = append(e.created, s)
	}
	s.Seq = rec.Offset
	e.markDirty(s)
	e.dedup.add(h, ev.Time)
	if e.cfg.maxSeries > 0 && e.part.Len() > e.cfg.maxSeries {
		e.evictIdle()
	}
	if e.part.Ready() {
		return e.part.Advance(e.onClose)
	}
	return nil
}

// series returns the series with the given id, taking it back into memory
// if it was evicted, or nil if the partition has never seen it.
func (e *engine) series(id []byte) (*window.Series, error) {
	if s := e.part.Series(string(id)); s != nil || !e.spilled {
		return s, nil
	}
	if s := e.evicted[string(id)]; s != nil {
		delete(e.evicted, s.ID())
		e.part.Adopt(s)
		e.cnt.revived++
		return s, nil
	}
	var s *window.Series
	_, err := e.store.Get(state.Key(nil, e.p, state.KindSeries, id), func(v []byte) (err error) {
		s, err = e.decodeSeries(id, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stream: reading evicted series %q of partition %d: %w", id, e.p, err)
	}
	if s != nil {
		e.cnt.revived++
	}
	return s, nil
}

// decodeSeries adds the series stored as v, with its buckets and ensemble
// state from the store, to the partition.
func (e *engine) decodeSeries(id, v []byte) (s *window.Series, err error) {
	s, e.ring, err = storedSeries(e.store, e.p, e.part, id, v, e.ring)
	if err != nil {
		return nil, err
	}
	return s, e.models.loadSeries(e.store, e.p, s)
}

// storedSeries decodes into part the series id of partition p whose state
// db stores as v, with its closed buckets from db. ring is scratch space,
// returned for reuse.
func storedSeries(db *state.DB, p int32, part *window.Partition, id, v []byte, ring []window.IndexedBucket) (*window.Series, []window.IndexedBucket, error) {
	ring = ring[:0]
	err := db.Scan(append(state.Key(nil, p, state.KindBucket, id), 0), func(k, v []byte) error {
		_, idx, err := state.ParseBucketKey(k)
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

// evictIdle evicts the least recently updated hundredth of the series cap
// from memory. Series changed since the last commit stay reachable until
// the commit has stored them.
func (e *engine) evictIdle() {
	e.idle = e.part.Idlest(e.idle[:0], max(1, e.cfg.maxSeries/100))
	for _, s := range e.idle {
		e.part.Evict(s)
		if e.isDirty[s] {
			e.evicted[s.ID()] = s
		} else {
			e.models.forget(s)
		}
	}
	e.cnt.evicted += int64(len(e.idle))
	clear(e.idle)
	e.spilled = true
}

func (e *engine) reject(rec *Record, reason Reason, detail string) error {
	e.cnt.dlq[reason]++
	return e.sink.deadLetter(rec, reason, detail)
}

func (e *engine) markDirty(s *window.Series) {
	if !e.isDirty[s] {
		e.isDirty[s] = true
		e.dirty = append(e.dirty, s)
	}
}

// onClose runs the forecasters for every series that closed a bucket, and
// hands the sink their forecasts when it wants them.
func (e *engine) onClose(bucket int64, closed []*window.Series) error {
	e.cnt.closes++
	return e.models.close(bucket, closed, e.sink.wants(bucket), func(s *window.Series, fcs []*model.Forecast, pub int) error {
		e.markDirty(s)
		if fcs != nil {
			e.cnt.forecasts++
		}
		return e.sink.closed(bucket, s, fcs, pub)
	})
}

// flush closes every bucket up to and including the one holding t, as if
// the watermark had reached t: backtests use it to close the last buckets
// of a finite input.
func (e *engine) flush(t time.Time) error {
	return e.part.AdvanceTo(e.part.Spec().End(e.part.Spec().Index(t)), e.onClose)
}

// release drops the bookkeeping kept for commits, for engines whose state is
// never committed (backtests), and expires old dedup ids.
func (e *engine) release() {
	clear(e.isDirty)
	e.dirty = e.dirty[:0]
	e.created = e.created[:0]
	e.dedup.pending = e.dedup.pending[:0]
	e.dedup.maxSlot = minSlot
	if wm, ok := e.part.Watermark(); ok {
		e.dedup.expire(wm)
	}
}

// metaVersion is the encoding version of a partition's commit point.
const metaVersion = 1

// appendState adds the engine's state to a commit batch for partition p,
// final when it is the partition's last before it is released:
// as ordinary writes, index entries for new series and, for every dirty
// series, its newly closed buckets, the deletion of buckets that left its
// history and then its state (so a split commit never stores a state whose
// buckets are missing); as final writes, the dedup record, expired dedup
// records and the commit point (next offset and window state). It clears
// the dirty set.
func (e *engine) appendState(b *state.Batch, p int32, firstOffset, nextOffset int64, final bool) error {
	var key, val []byte
	if err := e.models.appendState(b, p, e.dirty, final); err != nil {
		return err
	}
	for _, s := range e.created {
		b.Set(state.IndexKey(key[:0], []byte(s.ID())), state.AppendPartition(val[:0], p))
	}
	e.created = e.created[:0]
	for _, s := range e.dirty {
		id := []byte(s.ID())
		s.Changes(func(idx int64, bk window.Bucket) {
			b.Set(state.BucketKey(key[:0], p, id, idx), window.AppendBucket(val[:0], bk))
		}, func(idx int64) {
			b.Delete(state.BucketKey(key[:0], p, id, idx))
		})
		val, _ = s.AppendBinary(val[:0])
		b.Set(state.Key(key[:0], p, state.KindSeries, id), val)
		delete(e.isDirty, s)
	}
	e.dirty = e.dirty[:0]
	for _, s := range e.evicted {
		e.models.forget(s)
	}
	clear(e.evicted)
	ttl := 2*e.cfg.dedup + 24*time.Hour
	if rec, v, ok := e.dedup.flush(uint64(firstOffset)); ok {
		b.SetFinal(state.SlotKey(key[:0], p, state.KindDedup, rec.slot, rec.seq), v, ttl)
	}
	if wm, ok := e.part.Watermark(); ok {
		for _, rec := range e.dedup.expire(wm) {
			b.DeleteFinal(state.SlotKey(key[:0], p, state.KindDedup, rec.slot, rec.seq))
		}
	}
	val = append(val[:0], metaVersion)
	val = binary.AppendVarint(val, nextOffset)
	val, _ = e.part.AppendBinary(val)
	b.SetFinal(state.Key(key[:0], p, state.KindMeta, nil), val, 0)
	return nil
}

// load restores partition p's state from db and returns the next offset to
// read, or -1 when db holds nothing for p.
func (e *engine) load(db *state.DB, p int32) (next int64, err error) {
	next = -1
	e.store, e.p = db, p
	found, err := db.Get(state.Key(nil, p, state.KindMeta, nil), func(v []byte) error {
		off, err := metaOffset(p, v)
		if err != nil {
			return err
		}
		next = off
		_, n := binary.Varint(v[1:])
		return e.part.UnmarshalBinary(v[1+n:])
	})
	if err != nil || !found {
		return -1, err
	}
	prefix := len(state.KindPrefix(nil, p, state.KindSeries))
	err = db.Scan(state.KindPrefix(nil, p, state.KindSeries), func(k, v []byte) error {
		if _, err := e.decodeSeries(k[prefix:], v); err != nil {
			return err
		}
		if e.cfg.maxSeries > 0 && e.part.Len() > e.cfg.maxSeries {
			e.evictIdle()
		}
		return nil
	})
	if err != nil {
		return -1, err
	}
	wm, known := e.part.Watermark()
	err = db.Scan(state.KindPrefix(nil, p, state.KindDedup), func(k, v []byte) error {
		slot, seq, err := state.ParseSlotKey(k)
		if err != nil {
			return err
		}
		return e.dedup.load(dedupRecord{slot: slot, seq: seq}, v, wm, known)
	})
	if err != nil {
		return -1, err
	}
	return next, e.models.load(db, p)
}

// metaOffset returns the next input offset of partition p's commit point.
func metaOffset(p int32, v []byte) (int64, error) {
	if len(v) < 1 || v[0] != metaVersion {
		return 0, fmt.Errorf("stream: partition %d commit point has unknown encoding version %d (this build reads %d)", p, firstByte(v), metaVersion)
	}
	off, n := binary.Varint(v[1:])
	if n <= 0 {
		return 0, fmt.Errorf("stream: partition %d commit point is corrupt", p)
	}
	return off, nil
}

// localOffset returns the next input offset db's commit point of
// partition p holds, or -1 when db holds none.
func localOffset(db *state.DB, p int32) (int64, error) {
	next := int64(-1)
	_, err := db.Get(state.Key(nil, p, state.KindMeta, nil), func(v []byte) (err error) {
		next, err = metaOffset(p, v)
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
