package stream

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// countingSink counts what an engine produces.
type countingSink struct {
	dead, closes, forecasts int
	want                    bool
}

var _ sink = (*countingSink)(nil)

func (c *countingSink) deadLetter(*Record, Reason, string) error { c.dead++; return nil }
func (c *countingSink) wants(int64) bool                         { return c.want }
func (c *countingSink) closed(_ int64, _ *window.Series, fcs []*model.Forecast, _ int) error {
	c.closes++
	if fcs != nil {
		c.forecasts++
	}
	return nil
}

func newTestEngine(t testing.TB, s sink) *engine {
	t.Helper()
	cfg := Config{Connection: Connection{Brokers: []string{"x"}}, Limits: Limits{MaxFuture: -1}, Forecasting: Forecasting{Published: "tsb"}}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(cfg.engineConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	e.beginBatch()
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
		e.process(&recs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rec := &recs[i%len(recs)]
		rec.Offset = int64(len(recs) + i) // copies of seen ids: dedup path
		if err := e.process(rec); err != nil {
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
		if err := e.process(&Record{Offset: off, Key: []byte(key), Value: []byte(value)}); err != nil {
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
	if c.records != 5 || c.accepted != 2 || c.dupes != 1 || c.late != 1 || c.dlq[ReasonInvalidJSON] != 1 || c.dlq[ReasonLate] != 1 {
		t.Errorf("counters %+v", c)
	}
	if s.dead != 2 || s.closes != 1 || s.forecasts != 1 {
		t.Errorf("sink saw %d dead letters, %d closes, %d forecasts", s.dead, s.closes, s.forecasts)
	}
	if got := c.accepted + c.dupes + c.late + c.dlq[ReasonInvalidJSON]; got != c.records {
		t.Errorf("outcomes add up to %d of %d records", got, c.records)
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
	capped := func() *engine {
		e := newTestEngine(t, &countingSink{})
		e.cfg.maxSeries = maxSeries
		if _, err := e.load(db, 0); err != nil {
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
		e.beginBatch()
		for i := lo; i < hi; i++ {
			if err := e.process(&recs[i]); err != nil {
				t.Fatal(err)
			}
			if err := ref.process(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		b.Reset()
		if err := e.appendState(&b, 0, int64(lo), int64(hi), false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(&b); err != nil {
			t.Fatal(err)
		}
		if n := e.part.Len(); n > maxSeries+1 {
			t.Fatalf("after offset %d the capped engine holds %d series", hi, n)
		}
	}
	if e.cnt.evicted == 0 || e.cnt.revived == 0 {
		t.Fatalf("evicted %d, revived %d series: the test does not exercise eviction", e.cnt.evicted, e.cnt.revived)
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
	accepted, replayed := e.cnt.accepted, e.cnt.replayed
	last := start.Add((days - 1) * 24 * time.Hour).Format(time.RFC3339)
	if err := e.process(&Record{Offset: 0, Key: []byte(victim),
		Value: fmt.Appendf(nil, `{"event_id":"fresh","store":"s","sku":"%s","ts":"%s","qty":1}`, victim[2:], last)}); err != nil {
		t.Fatal(err)
	}
	if e.cnt.accepted != accepted || e.cnt.replayed != replayed+1 {
		t.Errorf("replayed record of evicted %s: accepted %d->%d, replayed %d->%d", victim, accepted, e.cnt.accepted, replayed, e.cnt.replayed)
	}

	end := start.Add((days + 1) * 24 * time.Hour)
	for i := range series {
		id := fmt.Appendf(nil, "s/k%02d", i)
		if _, err := e.series(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.flush(end); err != nil {
		t.Fatal(err)
	}
	if err := ref.flush(end); err != nil {
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
