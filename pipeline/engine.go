package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// Record is one input record.
type Record struct {
	// Offset is the record's offset in its partition.
	Offset int64
	// Key and Value are the record's key and payload.
	Key, Value []byte
}

// Sink receives what an engine produces. Drivers implement it: the Kafka
// task publishes and commits, a backtest scores.
type Sink interface {
	// DeadLetter is called for each rejected record.
	DeadLetter(rec *Record, reason Reason, detail string) error
	// Wants reports whether the forecasts made at a bucket's close are
	// needed; backtests only need those at evaluated origins.
	Wants(bucket int64) bool
	// Closed is called at each bucket close for every series that closed
	// it.
	Closed(c *Close) error
}

// Close is what a bucket close produced for one series. It is valid only
// during Sink.Closed.
type Close struct {
	// Bucket is the index of the bucket that closed: the forecast origin.
	Bucket int64
	// Series is the series; Sink.Closed must not change it.
	Series *window.Series
	// Forecasts holds one forecast per forecaster, in the order of
	// Engine.Models, or nil when the sink did not want the bucket's.
	Forecasts []*model.Forecast
	// Published is the index in Forecasts of the forecast to publish, -1
	// when Forecasts is nil.
	Published int
	// Model names the published forecaster, for forecast records.
	Model string
	// GeneratedAt is the wall-clock time of the engine's batch and
	// Watermark the partition's watermark.
	GeneratedAt, Watermark time.Time
	// Decision is what the engine decided from the published forecast
	// when Config.Decisions is on and Forecasts is not nil, else nil.
	Decision *Decision
	// Planned is the published forecast under the series' promotion plan
	// when Config.Promotions knows one and Forecasts is not nil, else nil
	// (see PublishedForecast).
	Planned *model.Forecast

	roster *roster
}

// PublishedForecast returns the forecast to publish: Planned if set, else
// the published forecaster's.
func (c *Close) PublishedForecast() *model.Forecast {
	if c.Planned != nil {
		return c.Planned
	}
	return c.Forecasts[c.Published]
}

// Version returns the published forecaster's version for forecast
// records: a learner's training progress, or auto's mix for this series.
// It formats a string, so only sinks that publish records call it.
func (c *Close) Version() string { return string(c.AppendVersion(nil)) }

// AppendVersion appends Version's text to dst.
func (c *Close) AppendVersion(dst []byte) []byte { return c.roster.appendVersion(dst, c.Published) }

// Counters are an engine's running totals of input records and what
// became of them.
type Counters struct {
	// Records counts every record processed; Accepted those counted in a
	// bucket, Dupes copies of an id already counted, Late records behind
	// the watermark and Replayed records a crash made the engine see
	// again after their series state had stored them.
	Records, Accepted, Dupes, Late, Replayed int64
	// DeadLetters counts rejected records by reason.
	DeadLetters map[Reason]int64
	// Closes counts bucket closes and Forecasts the series forecast at
	// them; Planned those published under a promotion plan.
	Closes, Forecasts, Planned int64
	// Evicted and Revived count series moved out of and back into memory,
	// Retired series deleted for idleness (see Config.RetireAfter).
	Evicted, Revived, Retired int64
	// Forgotten counts event ids forgotten before the dedup horizon to
	// keep at most Config.DedupMaxIDs.
	Forgotten int64
	// Skipped counts buckets closed without forecasts because the
	// watermark passed more than History of them at once (see
	// window.Partition.Advance).
	Skipped int64
}

// Reset zeroes the counters, keeping their storage.
func (c *Counters) Reset() { *c = Counters{DeadLetters: clearMap(c.DeadLetters)} }

func clearMap[M ~map[K]V, K comparable, V any](m M) M {
	clear(m)
	return m
}

// Engine is the pure core of a partition: it decodes records, drops
// duplicates, feeds the window and runs the forecasters at every bucket
// close, handing what it produces to its Sink. Kafka and Badger stay
// outside: a driver feeds records in, writes the sink's outputs and
// commits the engine's state (AppendState) through its own store. The live
// Kafka task and backtests drive the same engine. An Engine is owned by one
// goroutine.
type Engine struct {
	cfg   Config
	clock func() time.Time
	part  *window.Partition
	dec   *Decoder
	dedup *dedupSet
	sink  Sink
	ev    Event
	sale  window.Sale
	close Close

	dirty   []*window.Series
	isDirty map[*window.Series]bool
	created []*window.Series // series first seen since the last commit
	roster  *roster
	decider *decider  // nil unless Config.Decisions is on
	promo   *promoter // nil unless Config.Promotions is on
	now     time.Time
	cnt     Counters
	skipped int64 // the partition's Skipped as of the last Counters

	// Series evicted to bound memory live on in the store; store and p
	// are set by Load. evicted holds those evicted since the last commit,
	// whose state the commit still writes, and spilled says whether the
	// store may hold series that memory does not.
	store   Store
	p       int32
	evicted map[string]*window.Series
	spilled bool
	idle    []*window.Series
	ring    []window.IndexedBucket
	gone    []int64 // buckets a commit deletes, for AppendState
	sweep   []byte  // the stored series key the next retirement sweep starts at
	key     []byte  // scratch
	val     []byte  // scratch
	id      []byte  // scratch
	prefix  []byte  // scratch
	// stale holds the keys of stored buckets older than their series'
	// history, left by a crash between a series' state and the deletions
	// after it (see AppendState); the next commit deletes them.
	stale [][]byte
}

// NewEngine returns an engine for one partition, sending what it produces
// to sink. cfg is validated (see Config.Validate).
func NewEngine(cfg Config, sink Sink) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	part, err := window.NewPartition(cfg.Window)
	if err != nil {
		return nil, err
	}
	dec, err := NewDecoder(cfg.Limits)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		clock:   cfg.clock(),
		part:    part,
		dec:     dec,
		dedup:   newDedupSet(cfg.DedupHorizon, cfg.DedupMaxIDs),
		sink:    sink,
		isDirty: make(map[*window.Series]bool),
		cnt:     Counters{DeadLetters: make(map[Reason]int64)},
		evicted: make(map[string]*window.Series),
	}
	if e.roster, err = newRoster(&e.cfg.Forecasting, part.Spec()); err != nil {
		return nil, err
	}
	if e.decider, err = newDecider(&e.cfg.Decisions, e.cfg.Model.Horizon); err != nil {
		return nil, err
	}
	if e.promo, err = newPromoter(&e.cfg.Promotions, part.Spec(), e.cfg.Model.Horizon); err != nil {
		return nil, err
	}
	return e, nil
}

// BeginBatch reads the clock once for the batch's checks of event times
// and the generated_at of its forecasts.
func (e *Engine) BeginBatch() { e.now = e.clock() }

// Now returns the wall-clock time BeginBatch read.
func (e *Engine) Now() time.Time { return e.now }

// Process handles one record. It returns an error only when the sink or
// the store fails; bad records are the sink's dead letters, never errors.
func (e *Engine) Process(rec *Record) error {
	e.cnt.Records++
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
		e.cnt.Dupes++
		return nil
	}
	s, err := e.series(rec.Key)
	if err != nil {
		return err
	}
	if s != nil && rec.Offset <= s.Seq {
		// Already applied before a crash that split a large commit: keep
		// the id so later copies are still caught and move the watermark
		// as the record did then, but count nothing.
		e.cnt.Replayed++
		e.dedup.add(h, ev.Time)
		return e.part.AdvanceTo(ev.Time.Add(-e.cfg.Window.Lateness), e.onClose)
	}
	e.sale = window.Sale{Time: ev.Time, Qty: ev.Qty, Price: ev.Price, Promo: ev.Promo}
	known := e.part.Len()
	s, err = e.part.Add(rec.Key, &e.sale)
	if errors.Is(err, window.ErrLate) {
		e.cnt.Late++
		if e.cfg.LatePolicy == LateDrop {
			return nil
		}
		if !e.part.Late(ev.Time) {
			return e.reject(rec, ReasonLate, fmt.Sprintf("ts %s is in a bucket series %q has closed (its state is ahead of the partition's watermark)",
				ev.Time.Format(time.RFC3339), rec.Key))
		}
		wm, _ := e.part.Watermark()
		return e.reject(rec, ReasonLate, fmt.Sprintf("ts %s is in a bucket closed by watermark %s",
			ev.Time.Format(time.RFC3339), wm.Format(time.RFC3339)))
	}
	if err != nil {
		return err
	}
	e.cnt.Accepted++
	if e.part.Len() > known {
		e.created = append(e.created, s)
	}
	s.Seq = rec.Offset
	e.markDirty(s)
	e.dedup.add(h, ev.Time)
	if e.cfg.MaxSeries > 0 && e.part.Len() > e.cfg.MaxSeries {
		e.evictIdle()
	}
	if e.part.Ready() {
		return e.part.Advance(e.onClose)
	}
	return nil
}

// series returns the series with the given id, taking it back into memory
// if it was evicted, or nil if the partition has never seen it.
func (e *Engine) series(id []byte) (*window.Series, error) {
	if s := e.part.Series(string(id)); s != nil || !e.spilled {
		return s, nil
	}
	if s := e.evicted[string(id)]; s != nil {
		delete(e.evicted, s.ID())
		e.part.Adopt(s)
		e.cnt.Revived++
		return s, nil
	}
	var s *window.Series
	_, err := e.store.Get(key(nil, e.p, kindSeries, id), func(v []byte) (err error) {
		s, err = e.decodeSeries(id, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading evicted series %q of partition %d: %w", id, e.p, err)
	}
	if s != nil {
		e.cnt.Revived++
	}
	return s, nil
}

// decodeSeries adds the series stored as v, with its buckets and ensemble
// state from the store, to the partition.
func (e *Engine) decodeSeries(id, v []byte) (s *window.Series, err error) {
	s, e.ring, err = storedSeries(e.store, e.p, e.part, id, v, e.ring)
	if err != nil {
		return nil, err
	}
	oldest := s.Closed() - int64(s.Len()) + 1
	for _, rb := range e.ring {
		if rb.Index < oldest {
			e.stale = append(e.stale, bucketKey(nil, e.p, id, rb.Index))
		}
	}
	if err := e.roster.loadSeries(e.store, e.p, s); err != nil {
		return nil, err
	}
	if e.promo != nil {
		if err := e.promo.loadSeries(e.store, e.p, s); err != nil {
			return nil, err
		}
	}
	if e.decider != nil {
		return s, e.decider.loadSeries(e.store, e.p, s)
	}
	return s, nil
}

// evictIdle evicts the least recently updated hundredth of the series cap
// from memory. Series changed since the last commit stay reachable until
// the commit has stored them.
func (e *Engine) evictIdle() {
	e.idle = e.part.Idlest(e.idle[:0], max(1, e.cfg.MaxSeries/100))
	for _, s := range e.idle {
		e.part.Evict(s)
		if e.isDirty[s] {
			e.evicted[s.ID()] = s
		} else {
			e.forget(s)
		}
	}
	e.cnt.Evicted += int64(len(e.idle))
	clear(e.idle)
	e.spilled = true
}

func (e *Engine) reject(rec *Record, reason Reason, detail string) error {
	e.cnt.DeadLetters[reason]++
	return e.sink.DeadLetter(rec, reason, detail)
}

func (e *Engine) markDirty(s *window.Series) {
	if !e.isDirty[s] {
		e.isDirty[s] = true
		e.dirty = append(e.dirty, s)
	}
}

// forget drops what the forecasters and the decider keep for a series
// leaving memory.
func (e *Engine) forget(s *window.Series) {
	e.roster.forget(s)
	if e.decider != nil {
		e.decider.forget(s)
	}
	if e.promo != nil {
		e.promo.forget(s)
	}
}

// onClose runs the forecasters for every series that closed a bucket, and
// hands the sink their forecasts, with the decisions made from the
// published one, when it wants them; a RankingSink then gets the close's
// trend ranking.
func (e *Engine) onClose(bucket int64, closed []*window.Series) error {
	e.cnt.Closes++
	c := &e.close
	*c = Close{Bucket: bucket, GeneratedAt: e.now, roster: e.roster}
	c.Watermark, _ = e.part.Watermark()
	want := e.sink.Wants(bucket)
	decide := e.decider != nil && want
	if decide {
		e.decider.begin()
	}
	err := e.roster.close(bucket, closed, want, func(s *window.Series, fcs []*model.Forecast, pub int) error {
		e.markDirty(s)
		c.Series, c.Forecasts, c.Published, c.Decision, c.Planned = s, fcs, pub, nil, nil
		if e.promo != nil {
			e.promo.observe(bucket, s)
		}
		if fcs != nil {
			e.cnt.Forecasts++
			c.Model = e.roster.names[pub]
			if e.promo != nil {
				if c.Planned = e.promo.apply(bucket, s, fcs[pub]); c.Planned != nil {
					e.cnt.Planned++
				}
			}
			if decide {
				c.Decision = e.decider.decide(bucket, s, c.PublishedForecast())
			}
		}
		return e.sink.Closed(c)
	})
	if err != nil || !decide {
		return err
	}
	if rs, ok := e.sink.(RankingSink); ok {
		return rs.Ranked(bucket, e.now, e.decider.closeStores(), e.decider.ranking)
	}
	return nil
}

// Flush closes every bucket up to and including the one holding t, as if
// the watermark had reached t: backtests use it to close the last buckets
// of a finite input.
func (e *Engine) Flush(t time.Time) error {
	return e.part.AdvanceTo(e.part.Spec().End(e.part.Spec().Index(t)), e.onClose)
}

// Idle raises the watermark to wm, as an event at wm plus the lateness
// would, if that closes at least one bucket, and reports whether it did:
// a driver moves the watermark of a partition without input this way, so
// that its buckets still close, committing once per bucket. It does
// nothing before the first event, and never moves the watermark back.
// Call BeginBatch first.
func (e *Engine) Idle(wm time.Time) (bool, error) {
	last, ok := e.part.LastClosed()
	if !ok || wm.Before(e.part.Spec().End(last+1)) {
		return false, nil
	}
	return true, e.part.AdvanceTo(wm, e.onClose)
}

// Release drops the bookkeeping kept for commits, for engines whose state
// is never committed (backtests), and expires old dedup ids.
func (e *Engine) Release() {
	clear(e.isDirty)
	e.dirty = e.dirty[:0]
	e.created = e.created[:0]
	e.dedup.pending = e.dedup.pending[:0]
	e.dedup.maxSlot = minSlot
	if wm, ok := e.part.Watermark(); ok {
		e.dedup.expire(wm)
	}
	e.dedup.drain(len(e.dedup.doomed))
}

// Models returns the names of the forecasters in the order of
// Close.Forecasts.
func (e *Engine) Models() []string { return e.roster.names }

// Counters returns the engine's running totals; the caller may read and
// reset them between records.
func (e *Engine) Counters() *Counters {
	e.cnt.Forgotten += e.dedup.forgotten
	e.dedup.forgotten = 0
	e.cnt.Skipped += e.part.Skipped() - e.skipped
	e.skipped = e.part.Skipped()
	return &e.cnt
}

// ModelStats returns what the forecasters did since the statistics were
// last reset; the caller may read and reset them between records.
func (e *Engine) ModelStats() *ModelStats { return &e.roster.stats }

// Learned returns the learners' training totals since the engine started.
func (e *Engine) Learned() model.LearnStats { return e.roster.learnAll }

// Unsaved reports whether a learner has trained since its last checkpoint.
func (e *Engine) Unsaved() bool { return e.roster.trained }

// Spec returns the partition's bucket layout.
func (e *Engine) Spec() window.Spec { return e.part.Spec() }

// Watermark returns the partition's watermark, if an event has set one.
func (e *Engine) Watermark() (time.Time, bool) { return e.part.Watermark() }

// Lateness returns the allowed lateness the watermark trails by.
func (e *Engine) Lateness() time.Duration { return e.cfg.Window.Lateness }

// Series returns the number of series in memory.
func (e *Engine) Series() int { return e.part.Len() }

// DedupIDs returns the number of event ids remembered for deduplication.
func (e *Engine) DedupIDs() int { return e.dedup.len() }

// AppendState adds the engine's state to a commit of partition p whose
// records run from offset first to before next; final marks the last
// commit before the partition is released, which checkpoints the
// learners. Ordinary writes: index entries for new series and, for every
// dirty series, its newly closed buckets, then its state, then the deletion
// of the buckets that left its history; a series idle for RetireAfter is
// deleted instead (see retire). Any prefix of them, which a crash inside a
// split commit leaves behind, holds every series decodably: as its old
// state, whose buckets are all still stored (a newer one is past its last
// closed bucket and ignored), or as its new state, whose buckets are all
// written (an older one is before its history and skipped). Final writes:
// the dedup record, the deletion of up to dedupDeletes expired dedup
// records and the commit point (next offset and window state). It clears
// the dirty set. Buckets such a crash left behind after a series' new
// state are deleted by the first commit after the series is read back.
func (e *Engine) AppendState(w Writes, p int32, first, next int64, final bool) error {
	k, val := e.key[:0], e.val[:0]
	if e.cfg.RetireAfter > 0 && e.spilled {
		// Before the series in memory: those it retires are out of the
		// store's sight.
		if err := e.sweepStored(w, p); err != nil {
			return err
		}
	}
	if err := e.roster.appendState(w, p, e.dirty, final); err != nil {
		return err
	}
	if e.decider != nil {
		e.decider.appendState(w, p, e.dirty)
	}
	if e.promo != nil {
		e.promo.appendState(w, p, e.dirty)
	}
	for _, s := range e.created {
		e.id = append(e.id[:0], s.ID()...)
		k, val = indexKey(k[:0], e.id), appendPartition(val[:0], p)
		w.Set(k, val)
	}
	e.created = e.created[:0]
	for _, s := range e.dirty {
		delete(e.isDirty, s)
		if e.retirable(s.Activity()) {
			e.retire(w, p, s)
			continue
		}
		id := append(e.id[:0], s.ID()...)
		e.id = id
		e.gone = e.gone[:0]
		s.Changes(func(idx int64, bk window.Bucket) {
			k, val = bucketKey(k[:0], p, id, idx), window.AppendBucket(val[:0], bk)
			w.Set(k, val)
		}, func(idx int64) {
			e.gone = append(e.gone, idx)
		})
		val, _ = s.AppendBinary(val[:0])
		k = key(k[:0], p, kindSeries, id)
		w.Set(k, val)
		for _, idx := range e.gone {
			k = bucketKey(k[:0], p, id, idx)
			w.Delete(k)
		}
	}
	e.dirty = e.dirty[:0]
	for _, k := range e.stale {
		w.Delete(k)
	}
	e.stale = e.stale[:0]
	for _, s := range e.evicted {
		e.forget(s)
	}
	clear(e.evicted)
	if rec, v, ok := e.dedup.flush(uint64(first)); ok {
		k = slotKey(k[:0], p, kindDedup, rec.slot, rec.seq)
		w.SetFinal(k, v, e.cfg.DedupTTL())
	}
	if wm, ok := e.part.Watermark(); ok {
		e.dedup.expire(wm)
	}
	for _, rec := range e.dedup.drain(dedupDeletes) {
		k = slotKey(k[:0], p, kindDedup, rec.slot, rec.seq)
		w.DeleteFinal(k)
	}
	val = append(val[:0], commitVersion)
	val = binary.AppendVarint(val, next)
	val, _ = e.part.AppendBinary(val)
	k = CommitPointKey(k[:0], p)
	w.SetFinal(k, val, 0)
	e.key, e.val = k, val
	return nil
}

// retireScan bounds the stored series a commit examines for retirement.
const retireScan = 512

// retirable reports whether a series with the given activity is to be
// retired.
func (e *Engine) retirable(a window.Activity) bool {
	return e.cfg.RetireAfter > 0 && e.part.IdleFor(a) >= e.cfg.RetireAfter
}

// retire takes series s out of memory and deletes its keys from the
// store of partition p.
func (e *Engine) retire(w Writes, p int32, s *window.Series) {
	e.retireKeys(w, p, []byte(s.ID()), s.Activity())
	e.part.Evict(s)
	delete(e.evicted, s.ID())
	e.forget(s)
}

// retireKeys deletes every key of series id of partition p, given its
// activity: its state first, so that a commit split by a crash never
// leaves a state whose buckets are missing, then the buckets the store
// holds, its latest forecast, its ensemble scores, its decision state,
// latest replenishment plan and promotion state, and its index entry.
func (e *Engine) retireKeys(w Writes, p int32, id []byte, a window.Activity) {
	k := e.key[:0]
	w.Delete(key(k, p, kindSeries, id))
	for idx := a.Stored.From; idx <= a.Stored.To; idx++ {
		w.Delete(bucketKey(k, p, id, idx))
	}
	w.Delete(key(k, p, kindForecast, id))
	w.Delete(key(k, p, kindSelect, id))
	w.Delete(key(k, p, kindDecision, id))
	w.Delete(key(k, p, kindPlan, id))
	w.Delete(key(k, p, kindPromo, id))
	w.Delete(indexKey(k, id))
	e.key = k
	e.cnt.Retired++
}

// errSweepPaused stops a sweep of the stored series at its bound.
var errSweepPaused = errors.New("pipeline: sweep paused")

// sweepStored retires those of the next retireScan series stored for
// partition p that memory does not hold (evicted ones; memory's are
// checked as they close) and that are idle, resuming where the last
// sweep stopped and starting over at the end.
func (e *Engine) sweepStored(w Writes, p int32) error {
	prefix := kindPrefix(e.prefix[:0], p, kindSeries)
	e.prefix = prefix
	n := 0
	err := e.store.ScanFrom(prefix, e.sweep, func(k, v []byte) error {
		if n == retireScan {
			e.sweep = append(e.sweep[:0], k...)
			return errSweepPaused
		}
		n++
		id := k[len(prefix):]
		if e.part.Series(string(id)) != nil || e.evicted[string(id)] != nil {
			return nil
		}
		a, err := window.StoredActivity(v, e.part.Config().History)
		if err != nil {
			return fmt.Errorf("pipeline: series %q of partition %d: %w", id, p, err)
		}
		if e.retirable(a) {
			e.retireKeys(w, p, id, a)
		}
		return nil
	})
	if errors.Is(err, errSweepPaused) {
		return nil
	}
	e.sweep = e.sweep[:0]
	return err
}

// ForecastKey appends the key of the latest forecast record published for
// series id of partition p, which the HTTP API serves, to dst.
func ForecastKey(dst []byte, p int32, id string) []byte {
	return append(kindPrefix(dst, p, kindForecast), id...)
}

// Load restores partition p's state from st and returns the next offset
// to read, or -1 when st holds nothing for p. Series evicted to bound
// memory are read back from st as their events arrive.
func (e *Engine) Load(st Store, p int32) (next int64, err error) {
	next = -1
	e.store, e.p = st, p
	found, err := st.Get(CommitPointKey(nil, p), func(v []byte) error {
		off, err := CommitOffset(p, v)
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
	prefix := len(kindPrefix(nil, p, kindSeries))
	err = st.Scan(kindPrefix(nil, p, kindSeries), func(k, v []byte) error {
		if _, err := e.decodeSeries(k[prefix:], v); err != nil {
			return err
		}
		if e.cfg.MaxSeries > 0 && e.part.Len() > e.cfg.MaxSeries {
			e.evictIdle()
		}
		return nil
	})
	if err != nil {
		return -1, err
	}
	wm, known := e.part.Watermark()
	err = st.Scan(kindPrefix(nil, p, kindDedup), func(k, v []byte) error {
		slot, seq, err := parseSlotKey(k)
		if err != nil {
			return err
		}
		return e.dedup.load(dedupRecord{slot: slot, seq: seq}, v, wm, known)
	})
	if err != nil {
		return -1, err
	}
	if err := e.roster.load(st, p); err != nil {
		return -1, err
	}
	if e.decider != nil {
		if err := e.decider.load(st, p); err != nil {
			return -1, err
		}
	}
	if e.promo != nil {
		if err := e.promo.load(st, p); err != nil {
			return -1, err
		}
	}
	return next, nil
}
