package pipeline

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// TestEngineRetiresIdleSeries runs a partition for 20 days in which one
// series sells every day, one only on day 0 and five junk series, which
// the series cap evicts to the store, once with quantity 0 on day 1. With
// RetireAfter at 10 days, the idle series are retired, those in memory at
// a close and those in the store by the sweep: every key they had is gone,
// the busy series is untouched, and an event of a retired series starts
// it afresh.
func TestEngineRetiresIdleSeries(t *testing.T) {
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := testConfig()
	cfg.RetireAfter = 10 * 24 * time.Hour
	cfg.MaxSeries = 3
	e, err := NewEngine(cfg, &countingSink{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	off := int64(0)
	event := func(sku string, day int, qty float64) {
		t.Helper()
		ts := start.AddDate(0, 0, day).Add(time.Duration(off) * time.Second).Format(time.RFC3339)
		v := fmt.Appendf(nil, `{"event_id":"e%d","store":"s","sku":"%s","ts":"%s","qty":%g}`, off, sku, ts, qty)
		if err := e.Process(&Record{Offset: off, Key: []byte("s/" + sku), Value: v}); err != nil {
			t.Fatal(err)
		}
		off++
	}
	var b state.Batch
	for day := range 21 {
		b.Reset()
		first := off
		e.BeginBatch()
		event("busy", day, 2)
		switch day {
		case 0:
			event("gone", day, 5)
			b.Set(ForecastKey(nil, 0, "s/gone"), []byte(`{}`)) // as the Kafka task stores it
		case 1:
			for i := range 5 {
				event(fmt.Sprintf("junk%d", i), day, 0)
			}
		}
		if err := e.AppendState(&b, 0, first, off, false); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	if c := e.Counters(); c.Retired != 6 {
		t.Errorf("%d series retired, want 6", c.Retired)
	}
	var left []string
	for _, prefix := range [][]byte{PartitionPrefix(nil, 0), {indexTag}} {
		db.Scan(prefix, func(k, v []byte) error {
			if bytes.Contains(k, []byte("gone")) || bytes.Contains(k, []byte("junk")) {
				left = append(left, fmt.Sprintf("%q", k))
			}
			return nil
		})
	}
	if len(left) > 0 {
		t.Errorf("retired series left keys: %s", strings.Join(left, " "))
	}
	view, _ := window.NewPartition(e.part.Config())
	busy, found, err := ReadSeries(db, 0, view, []byte("s/busy"))
	if err != nil || !found || busy.Len() != 19 {
		t.Fatalf("the busy series: found %v, %v, %d buckets", found, err, busy.Len())
	}
	event("gone", 21, 1)
	if s := e.part.Series("s/gone"); s == nil || s.First() != e.Spec().Index(start.AddDate(0, 0, 21)) {
		t.Errorf("a retired series' next event did not start it afresh: %+v", s)
	}
}

// TestRestoreRetiredSeries applies a changelog's series state and then its
// tombstone, as a restore reads a retired series: the global index entry,
// which changelogs do not carry, goes with the state.
func TestRestoreRetiredSeries(t *testing.T) {
	st := newClockStore()
	k := key(nil, 3, kindSeries, []byte("s/k"))
	for _, v := range [][]byte{[]byte("state"), nil} {
		if _, err := ApplyRestored(st, 3, k, v, time.Hour); err != nil {
			t.Fatal(err)
		}
		p, found, err := SeriesPartition(st, []byte("s/k"))
		if err != nil || found != (v != nil) || (found && p != 3) {
			t.Errorf("after restoring %q: index says partition %d, found %v, %v", v, p, found, err)
		}
	}
}
