package stream

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// TestSeriesDuringCommits reads a series through the HTTP API's Series
// while its partition commits a bucket close after another: every answer
// must be whole. Before, the index, the series state and its buckets were
// read in three snapshots, and a commit between them made the buckets
// disagree with the state (an internal error, HTTP 500).
func TestSeriesDuringCommits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{"unused:9092"}
	cfg.Published = "tsb"
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	p := newTestProcessor(t, cfg, state.Config{InMemory: true})
	db := p.db
	p.setOwned(0, true)
	eng, err := pipeline.NewEngine(p.Config().Config, discardSink{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	var done, stop atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer done.Store(true)
		var b state.Batch
		for day := 0; day < 1500 && !stop.Load(); day++ {
			b.Reset()
			eng.BeginBatch()
			ts := base.AddDate(0, 0, day).Add(12 * time.Hour).Format(time.RFC3339)
			rec := pipeline.Record{Offset: int64(day), Key: []byte("s/k"),
				Value: fmt.Appendf(nil, `{"event_id":"e%d","store":"s","sku":"k","ts":"%s","qty":1}`, day, ts)}
			if err := eng.Process(&rec); err != nil {
				t.Error(err)
				return
			}
			if err := eng.AppendState(&b, 0, int64(day), int64(day+1), false); err != nil {
				t.Error(err)
				return
			}
			if _, err := db.Commit(&b); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { stop.Store(true); <-finished }()
	reads := 0
	for !done.Load() {
		resp, err := p.Series("s/k")
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		if n := len(resp.Buckets); n > 84 {
			t.Fatalf("%d buckets, history 84", n)
		}
		reads++
	}
	if reads < 20 {
		t.Errorf("only %d reads while the series changed", reads)
	}
}

// discardSink drops what an engine produces.
type discardSink struct{}

func (discardSink) DeadLetter(*pipeline.Record, pipeline.Reason, string) error { return nil }
func (discardSink) Wants(int64) bool                                           { return false }
func (discardSink) Closed(*pipeline.Close) error                               { return nil }
