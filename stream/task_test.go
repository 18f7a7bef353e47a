package stream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// TestTaskReleasesBuffers runs one batch in which 10,000 series close a
// bucket through a partition task: its forecasts (about 20 MB) fill the
// task's buffers, which must not keep that capacity afterwards. Before,
// they kept their peak size until the task ended (about 600 MB per
// partition after a close of 100,000 series).
func TestTaskReleasesBuffers(t *testing.T) {
	const series = 10_000
	brokers := kafkatest.NewCluster(t, 1, "sales", "forecasts", "sales.dlq")
	cfg := testConfig(brokers)
	cfg.NoChangelog = true
	cfg.Published = "tsb"
	// In memory, Badger would refuse the batch's 380 kB dedup record.
	p := newTestProcessor(t, cfg, state.Config{Dir: t.TempDir()})
	db := p.db
	tk, err := newTask(p, 0, soleOwner{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.eng.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	for i := range series + 1 {
		e := testEvent{ID: fmt.Sprint(i), Store: "s", SKU: fmt.Sprint(i), TS: ts(0, 12), Qty: 1}
		if i == series {
			e.TS = ts(1, 12) // closes day 0 for every series
		}
		m := e.message()
		tk.recs = append(tk.recs, pipeline.Record{Offset: int64(i), Key: m.Key, Value: m.Value})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tk.processBatch(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := testutilCounter(p.m.forecasts); n != series {
		t.Fatalf("%v forecasts, want %d", n, series)
	}
	if c := cap(tk.arena); c > retainBytes {
		t.Errorf("the forecast arena keeps %d MB", c>>20)
	}
	if c := cap(tk.out); c > retainMessages {
		t.Errorf("the output buffer keeps room for %d messages", c)
	}
	if n := tk.batch.Bytes(); n > retainBytes {
		t.Errorf("the state batch keeps %d MB", n>>20)
	}
}

// newTestProcessor returns a processor that does not run, over a state
// store opened with dbCfg; both are closed when the test ends.
func newTestProcessor(t *testing.T, cfg Config, dbCfg state.Config) *Processor {
	t.Helper()
	db, err := state.Open(dbCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := New(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.writer.Close() })
	return p
}

// soleOwner is the group generation of a task that no other member
// contends: it accepts every offset commit.
type soleOwner struct{}

func (soleOwner) CommitOffsets(map[string]map[int]int64) error { return nil }
