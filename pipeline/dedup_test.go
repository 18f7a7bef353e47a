package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// clockStore is an in-memory Store and Writes that expires entries written
// with a TTL by its own clock, the way Badger does by the wall clock, so
// that a test can let wall-clock time pass.
type clockStore struct {
	now time.Time
	m   map[string]clockEntry
}

type clockEntry struct {
	v       []byte
	expires time.Time // zero: never
}

var (
	_ Store  = (*clockStore)(nil)
	_ Writes = (*clockStore)(nil)
)

func newClockStore() *clockStore {
	return &clockStore{now: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), m: map[string]clockEntry{}}
}

func (s *clockStore) Set(k, v []byte) { s.m[string(k)] = clockEntry{v: bytes.Clone(v)} }
func (s *clockStore) Delete(k []byte) { delete(s.m, string(k)) }
func (s *clockStore) DeleteFinal(k []byte) {
	delete(s.m, string(k))
}

func (s *clockStore) SetFinal(k, v []byte, ttl time.Duration) {
	e := clockEntry{v: bytes.Clone(v)}
	if ttl > 0 {
		e.expires = s.now.Add(ttl)
	}
	s.m[string(k)] = e
}

func (s *clockStore) live(e clockEntry) bool { return e.expires.IsZero() || s.now.Before(e.expires) }

func (s *clockStore) Get(k []byte, fn func([]byte) error) (bool, error) {
	e, ok := s.m[string(k)]
	if !ok || !s.live(e) {
		return false, nil
	}
	return true, fn(e.v)
}

func (s *clockStore) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return s.ScanFrom(prefix, nil, fn)
}

func (s *clockStore) ScanFrom(prefix, from []byte, fn func(k, v []byte) error) error {
	for _, k := range slices.Sorted(maps.Keys(s.m)) {
		if e := s.m[k]; strings.HasPrefix(k, string(prefix)) && k >= string(from) && s.live(e) {
			if err := fn([]byte(k), e.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestDedupSurvivesDowntime counts an event, stops for a month of wall
// clock, and reads a copy of it: deduplication runs on event time, so the
// copy is a duplicate however long the process was down. Before, dedup
// records expired five days of wall clock after they were written.
func TestDedupSurvivesDowntime(t *testing.T) {
	st := newClockStore()
	ev := []byte(`{"event_id":"e1","store":"s","sku":"k","ts":"2024-05-01T10:00:00Z","qty":2}`)
	var s countingSink
	run := func(off int64) *Engine {
		t.Helper()
		e := newTestEngine(t, &s)
		if _, err := e.Load(st, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.Process(&Record{Offset: off, Key: []byte("s/k"), Value: ev}); err != nil {
			t.Fatal(err)
		}
		if err := e.AppendState(st, 0, off, off+1, false); err != nil {
			t.Fatal(err)
		}
		return e
	}
	run(0)
	st.now = st.now.Add(30 * 24 * time.Hour)
	e := run(1)
	if c := e.Counters(); c.Accepted != 0 || c.Dupes != 1 {
		t.Errorf("after a month down, the copy was accepted %d times and dropped %d, want 0 and 1", c.Accepted, c.Dupes)
	}
}

// TestDedupHorizonCoversBucket checks that a horizon shorter than a bucket,
// which would let copies in an open bucket count twice, is refused.
func TestDedupHorizonCoversBucket(t *testing.T) {
	for _, tc := range []struct {
		width   window.Width
		horizon time.Duration
		ok      bool
	}{
		{window.Day, 48 * time.Hour, true},
		{window.Day, 24 * time.Hour, false}, // a 25-hour day would outlast it
		{window.Hour, 2 * time.Hour, true},
		{window.Week, 48 * time.Hour, false},
		{window.Week, 169 * time.Hour, true},
		{window.Week, 0, true}, // no deduplication
	} {
		cfg := testConfig()
		cfg.Window.Width, cfg.DedupHorizon = tc.width, tc.horizon
		err := cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "DedupHorizon")) {
			t.Errorf("%v buckets, horizon %v: Validate = %v, want ok=%v", tc.width, tc.horizon, err, tc.ok)
		}
	}
}

// TestDedupSweepAtScale stores 220,000 dedup records, what about seven
// event-hours of commits at nine per second leave behind, and moves the
// watermark past all of them: every commit must stay within one Badger
// transaction, and the records must still all go. Before, the sweep
// deleted them all in the commit's final transaction, which Badger
// refused as too big.
func TestDedupSweepAtScale(t *testing.T) {
	const records = 220_000
	db, err := state.Open(state.Config{InMemory: true}) // the same transaction limits as on disk
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s countingSink
	e := newTestEngine(t, &s)
	if _, err := e.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	var b state.Batch
	commit := func(e *Engine, first, next int64) {
		t.Helper()
		b.Reset()
		if err := e.AppendState(&b, 0, first, next, false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(&b); err != nil {
			t.Fatalf("commit %d: %v", next, err)
		}
	}
	day := func(d int) []byte {
		return fmt.Appendf(nil, `{"event_id":"d%d","store":"s","sku":"k","ts":"2024-05-%02dT10:00:00Z","qty":1}`, d, d)
	}
	if err := e.Process(&Record{Offset: 0, Key: []byte("s/k"), Value: day(1)}); err != nil {
		t.Fatal(err)
	}
	commit(e, 0, 1)
	slot := slotOf(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC))
	var key, val []byte
	b.Reset()
	for i := range records {
		val = binary.LittleEndian.AppendUint64(val[:0], uint64(i))
		val = binary.LittleEndian.AppendUint64(val, 1)
		val = binary.AppendVarint(val, slot-int64(i%7))
		b.SetFinal(slotKey(key[:0], 0, kindDedup, slot-int64(i%7), uint64(1+i)), val, 0)
		if b.Len() == 10_000 || i == records-1 {
			if _, err := db.Commit(&b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}

	e = newTestEngine(t, &s)
	if _, err := e.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	if n := e.DedupIDs(); n != records+1 {
		t.Fatalf("loaded %d ids, want %d", n, records+1)
	}
	if err := e.Process(&Record{Offset: 1, Key: []byte("s/k"), Value: day(5)}); err != nil {
		t.Fatal(err)
	}
	commit(e, 1, 2)
	left := func() (n int) {
		db.Scan(kindPrefix(nil, 0, kindDedup), func(k, v []byte) error { n++; return nil })
		return n
	}
	for range records / dedupDeletes {
		commit(e, 2, 2)
	}
	if n := left(); n != 1 {
		t.Errorf("%d dedup records left after %d commits, want the last event's", n, records/dedupDeletes+1)
	}
	if n := e.DedupIDs(); n != 1 {
		t.Errorf("%d ids remembered, want only the last event's", n)
	}
}

// TestDedupFlood feeds three million distinct event ids, each a valid
// event of quantity 0, to an engine that keeps at most 100,000: its memory
// stays bounded, the oldest ids are forgotten and counted, and copies of
// recent ids are still dropped.
func TestDedupFlood(t *testing.T) {
	const flood, maxIDs = 3_000_000, 100_000
	cfg := testConfig()
	cfg.DedupMaxIDs = maxIDs
	var s countingSink
	e, err := NewEngine(cfg, &s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var w discardWrites
	rec := Record{Key: []byte("s/k")}
	for i := range flood {
		ts := start.Add(time.Duration(i) * 20 * time.Hour / flood)
		rec.Offset = int64(i)
		rec.Value = fmt.Appendf(rec.Value[:0], `{"event_id":"flood-%d","store":"s","sku":"k","ts":"%s","qty":0}`, i, ts.Format(time.RFC3339))
		if err := e.Process(&rec); err != nil {
			t.Fatal(err)
		}
		if i%50_000 == 49_999 {
			if err := e.AppendState(&w, 0, int64(i-49_999), int64(i+1), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(before); grew > 64<<20 {
		t.Errorf("the heap grew by %d MB for a flood of %d ids", grew>>20, flood)
	}
	c := e.Counters()
	if n := e.DedupIDs(); n > maxIDs {
		t.Errorf("%d ids remembered, cap %d", n, maxIDs)
	}
	if c.Accepted != flood || c.Forgotten < flood-maxIDs {
		t.Errorf("accepted %d, forgot %d; want %d and at least %d", c.Accepted, c.Forgotten, flood, flood-maxIDs)
	}
	// The last ids are remembered: a copy is dropped.
	if err := e.Process(&rec); err != nil {
		t.Fatal(err)
	}
	if c.Dupes != 1 {
		t.Errorf("a copy of the last id was not dropped (%d duplicates)", c.Dupes)
	}
	t.Logf("heap %d MB after GC, %d ids remembered, %d forgotten", ms.HeapAlloc>>20, e.DedupIDs(), c.Forgotten)
}

// discardWrites is a commit that goes nowhere.
type discardWrites struct{}

func (discardWrites) Set(k, v []byte)                         {}
func (discardWrites) Delete(k []byte)                         {}
func (discardWrites) SetFinal(k, v []byte, ttl time.Duration) {}
func (discardWrites) DeleteFinal(k []byte)                    {}
