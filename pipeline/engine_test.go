package pipeline

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// countingSink counts what an engine produces.
type countingSink struct {
	dead, closes, forecasts int
	want                    bool
}

var _ Sink = (*countingSink)(nil)

func (c *countingSink) DeadLetter(*Record, Reason, string) error { c.dead++; return nil }
func (c *countingSink) Wants(int64) bool                         { return c.want }
func (c *countingSink) Closed(cl *Close) error {
	c.closes++
	if cl.Forecasts != nil {
		c.forecasts++
	}
	return nil
}

// testConfig returns the defaults with TSB published and no checks of
// event times against the wall clock.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	cfg.Published = "tsb"
	return cfg
}

func newTestEngine(t testing.TB, s Sink) *Engine {
	t.Helper()
	e, err := NewEngine(testConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	return e
}

// BenchmarkEngineProcess measures the per-event path of a partition task
// (decode, validate, dedup, window update) over 1,000 series, without bucket
// closes, and reports its allocations.
func BenchmarkEngineProcess(b *testing.B) {
	var s countingSink
	e := newTestEngine(b, &s)
	const series = 1000
	recs := make([]Record, 1<<16)
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		key := fmt.Sprintf("S%02d/SKU-%04d", i%series%50, i%series)
		store, sku, _ := cutSlash(key)
		ts := start.Add(time.Duration(i) * 20 * time.Hour / time.Duration(len(recs)))
		recs[i] = Record{Key: []byte(key), Value: fmt.Appendf(nil,
			`{"event_id":"ev-%09d","store":"%s","sku":"%s","ts":"%s","qty":%d,"price":%d.%02d}`,
			i, store, sku, ts.Format(time.RFC3339), 1+i%4, 1+i%20, i%100)}
	}
	// Warm up: create the series and size the dedup set.
	for i := range recs {
		e.Process(&recs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rec := &recs[i%len(recs)]
		rec.Offset = int64(len(recs) + i) // copies of seen ids: dedup path
		if err := e.Process(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func cutSlash(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestEngineCountsEveryRecord feeds good, duplicate, malformed and late
// records and checks every one is accounted for exactly once.
func TestEngineCountsEveryRecord(t *testing.T) {
	var s countingSink
	s.want = true
	e := newTestEngine(t, &s)
	feed := func(off int64, key, value string) {
		t.Helper()
		if err := e.Process(&Record{Offset: off, Key: []byte(key), Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(id string, day, hour int) string {
		return fmt.Sprintf(`{"event_id":"%s","store":"s","sku":"k","ts":"2024-05-%02dT%02d:00:00Z","qty":1}`, id, day, hour)
	}
	feed(0, "s/k", ev("a", 1, 10))
	feed(1, "s/k", ev("a", 1, 10)) // duplicate
	feed(2, "s/k", "{")            // malformed
	feed(3, "s/k", ev("b", 2, 12)) // closes May 1
	feed(4, "s/k", ev("c", 1, 23)) // late
	c := e.cnt
	if c.Records != 5 || c.Accepted != 2 || c.Dupes != 1 || c.Late != 1 || c.DeadLetters[ReasonInvalidJSON] != 1 || c.DeadLetters[ReasonLate] != 1 {
		t.Errorf("counters %+v", c)
	}
	if s.dead != 2 || s.closes != 1 || s.forecasts != 1 {
		t.Errorf("sink saw %d dead letters, %d closes, %d forecasts", s.dead, s.closes, s.forecasts)
	}
	if got := c.Accepted + c.Dupes + c.Late + c.DeadLetters[ReasonInvalidJSON]; got != c.Records {
		t.Errorf("outcomes add up to %d of %d records", got, c.Records)
	}
}

// TestEngineEvictsIdleSeries runs the same records through an engine that
// keeps at most a few series in memory, committing to Badger after every
// batch and restarting halfway, and through one without a cap: every
// series must end with identical state, and a replayed record of an
// evicted series must not count twice.
func TestEngineEvictsIdleSeries(t *testing.T) {
	const series, days, maxSeries = 40, 30, 8
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for d := range days {
		for i := range series {
			// Series take turns being idle for days, so the capped engine
			// evicts and revives them.
			if (d/(1+i%5)+i)%3 == 0 {
				continue
			}
			ts := start.Add(time.Duration(d)*24*time.Hour + time.Duration(i)*time.Minute)
			recs = append(recs, Record{Offset: int64(len(recs)), Key: fmt.Appendf(nil, "s/k%02d", i),
				Value: fmt.Appendf(nil, `{"event_id":"e%d","store":"s","sku":"k%02d","ts":"%s","qty":%d}`,
					len(recs), i, ts.Format(time.RFC3339), 1+(d*i)%5)})
		}
	}

	db, err := state.Open(state.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	capped := func() *Engine {
		cfg := testConfig()
		cfg.MaxSeries = maxSeries
		e, err := NewEngine(cfg, &countingSink{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Load(db, 0); err != nil {
			t.Fatal(err)
		}
		return e
	}
	ref, e := newTestEngine(t, &countingSink{}), capped()
	var b state.Batch
	for lo := 0; lo < len(recs); lo += 100 {
		if lo >= len(recs)/2 && lo < len(recs)/2+100 {
			e = capped() // restart: load evicts down to the cap
		}
		hi := min(lo+100, len(recs))
		e.BeginBatch()
		for i := lo; i < hi; i++ {
			if err := e.Process(&recs[i]); err != nil {
				t.Fatal(err)
			}
			if err := ref.Process(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		b.Reset()
		if err := e.AppendState(&b, 0, int64(lo), int64(hi), false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(&b); err != nil {
			t.Fatal(err)
		}
		if n := e.part.Len(); n > maxSeries+1 {
			t.Fatalf("after offset %d the capped engine holds %d series", hi, n)
		}
	}
	if e.cnt.Evicted == 0 || e.cnt.Revived == 0 {
		t.Fatalf("evicted %d, revived %d series: the test does not exercise eviction", e.cnt.Evicted, e.cnt.Revived)
	}

	// A record the state already holds (as after a split commit) of an
	// evicted series is skipped, not counted again.
	var victim string
	for i := range series {
		if id := fmt.Sprintf("s/k%02d", i); e.part.Series(id) == nil {
			victim = id
			break
		}
	}
	accepted, replayed := e.cnt.Accepted, e.cnt.Replayed
	last := start.Add((days - 1) * 24 * time.Hour).Format(time.RFC3339)
	if err := e.Process(&Record{Offset: 0, Key: []byte(victim),
		Value: fmt.Appendf(nil, `{"event_id":"fresh","store":"s","sku":"%s","ts":"%s","qty":1}`, victim[2:], last)}); err != nil {
		t.Fatal(err)
	}
	if e.cnt.Accepted != accepted || e.cnt.Replayed != replayed+1 {
		t.Errorf("replayed record of evicted %s: accepted %d->%d, replayed %d->%d", victim, accepted, e.cnt.Accepted, replayed, e.cnt.Replayed)
	}

	end := start.Add((days + 1) * 24 * time.Hour)
	for i := range series {
		id := fmt.Appendf(nil, "s/k%02d", i)
		if _, err := e.series(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Flush(end); err != nil {
		t.Fatal(err)
	}
	if err := ref.Flush(end); err != nil {
		t.Fatal(err)
	}
	for i := range series {
		id := fmt.Sprintf("s/k%02d", i)
		got, want := e.part.Series(id), ref.part.Series(id)
		gb, _ := got.AppendBinary(nil)
		wb, _ := want.AppendBinary(nil)
		if !bytes.Equal(gb, wb) || !slices.Equal(got.QtyTo(nil, days+1), want.QtyTo(nil, days+1)) {
			t.Errorf("%s: capped engine's history %v, want %v", id, got.QtyTo(nil, days+1), want.QtyTo(nil, days+1))
		}
	}
}

// TestEngineWatermarkJump feeds, with the past-time check off as for a
// replay of history, a first event stamped 1970 and then one from 2024 to
// an engine with hourly buckets: the jump of about 473,000 buckets makes
// at most History closes and forecasts, and is counted.
func TestEngineWatermarkJump(t *testing.T) {
	cfg := testConfig()
	cfg.Window.Width = window.Hour
	s := countingSink{want: true}
	e, err := NewEngine(cfg, &s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	for i, ts := range []string{"1970-01-01T00:00:00Z", "2024-05-01T10:00:00Z"} {
		v := fmt.Appendf(nil, `{"event_id":"e%d","store":"s","sku":"k","ts":"%s","qty":1}`, i, ts)
		if err := e.Process(&Record{Offset: int64(i), Key: []byte("s/k"), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	history := e.part.Config().History
	if s.closes > history || s.forecasts > history {
		t.Errorf("%d closes and %d forecasts, want at most %d", s.closes, s.forecasts, history)
	}
	if c := e.Counters(); c.Skipped < 470_000 {
		t.Errorf("%d buckets counted as skipped, want the jump's", c.Skipped)
	}
}
