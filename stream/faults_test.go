package stream

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trendstream/trendstream/internal/faultproxy"
	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/pipeline"
)

// genLog is a log handler that counts the consumer-group generations
// started.
type genLog struct {
	mu   sync.Mutex
	gens int
}

func (h *genLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *genLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *genLog) WithGroup(string) slog.Handler            { return h }
func (h *genLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "generation started" {
		h.mu.Lock()
		h.gens++
		h.mu.Unlock()
	}
	return nil
}

func (h *genLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gens
}

// TestOwnerCheckAfterCoordinatorReset resets every connection of a
// processor, the group coordinator's among them, while a task is between
// its ownership check and its changelog write. The generation ends with
// the coordinator connection: the task must not commit its batch to
// Badger under it (its next ownership check fails and it abandons the
// batch), and the next generation takes the partition over from the
// changelog, so every event counts once.
func TestOwnerCheckAfterCoordinatorReset(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a generation's end")
	}
	c := fakeCluster(t, 1)
	brokers := c.ListenAddrs()
	px, err := faultproxy.New(brokers...)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	skus := []string{"a", "b", "c", "d"}
	cfg := testConfig(px.Addrs())
	cfg.Published = "tsb"
	cfg.SessionTimeout = time.Second
	cfg.ShutdownGrace = 2 * time.Second
	var log genLog
	cfg.Logger = slog.New(&log)
	var armed atomic.Bool
	paused, release := make(chan struct{}), make(chan struct{})
	a := startProcessor(t, cfg, t.TempDir(), func(p *Processor) {
		p.commitHook = func(s commitStage, _ int32) {
			if s == stageWrite && armed.CompareAndSwap(true, false) {
				close(paused)
				<-release
			}
		}
	})
	defer a.stop(t)
	produce(t, brokers, "sales", dayEvents(skus, 0, 11)...)
	waitFor(t, 30*time.Second, "days 0-10 committed", committed(a.db, 44))

	armed.Store(true)
	produce(t, brokers, "sales", dayEvents(skus, 11, 12)...)
	select {
	case <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("the task never reached its changelog write")
	}
	gens := log.count()
	px.Reset()
	time.Sleep(time.Second) // the heartbeat notices the reset
	close(release)

	// Until a new generation starts, the old one's task commits nothing.
	deadline := time.Now().Add(30 * time.Second)
	for log.count() == gens {
		if got, err := pipeline.LocalOffset(a.db, 0); err != nil || got != 44 {
			t.Fatalf("the task committed up to %d (%v) after its generation's coordinator connection was reset", got, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no new generation within 30s of the reset")
		}
		time.Sleep(10 * time.Millisecond)
	}

	produce(t, brokers, "sales", dayEvents(skus, 12, 13)...)
	waitFor(t, 30*time.Second, "days 11-12 committed", committed(a.db, 52))
	for _, sku := range skus {
		resp, err := a.p.Series("s/" + sku)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Buckets) != 12 {
			t.Errorf("s/%s has %d buckets, want 12", sku, len(resp.Buckets))
		}
		for d, b := range resp.Buckets {
			if b.Qty != float64(1+d%3) {
				t.Errorf("s/%s day %d counted %v, want %v", sku, d, b.Qty, 1+d%3)
			}
		}
	}
	// No changelog record of the old generation follows the new one's.
	stale, high := 0, int64(0)
	for _, m := range kafkatest.ReadTopic(t, brokers, "test.changelog", 0, time.Second, 20*time.Second) {
		if tok := recordToken(&m); tok < high {
			stale++
		} else {
			high = tok
		}
	}
	if stale > 0 {
		t.Errorf("%d changelog records of the old generation follow the new one's", stale)
	}
}
