package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
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
