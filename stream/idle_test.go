package stream

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trendstream/trendstream/internal/kafkatest"
)

// TestIdlePartition lets a partition go quiet after one event and moves
// the wall clock (Config.Clock) on: past the idle timeout, a live
// partition's watermark follows the clock minus the lateness, so
// yesterday's bucket closes and its forecast is published and committed.
// A partition whose events were far behind the clock when they arrived
// (a replay of history) is not idle, and a watermark ahead of the clock
// never moves back.
func TestIdlePartition(t *testing.T) {
	day0 := base.Add(10 * time.Hour) // the event's time
	for _, tc := range []struct {
		name          string
		arrival, idle time.Time // the clock when the event arrives, then after
		forecasts     int
		watermark     time.Time
	}{
		{name: "live", arrival: day0.Add(5 * time.Minute), idle: base.Add(26 * time.Hour),
			forecasts: 1, watermark: base.Add(25 * time.Hour)},
		{name: "replaying history", arrival: day0.AddDate(0, 0, 60), idle: day0.AddDate(0, 0, 61),
			watermark: day0.Add(-time.Hour)},
		{name: "ahead of the clock", arrival: day0.Add(-time.Hour), idle: day0.Add(-time.Hour / 2),
			watermark: day0.Add(-time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := kafkatest.NewCluster(t, 1, "sales")
			var clock atomic.Int64
			clock.Store(tc.arrival.UnixNano())
			cfg := testConfig(brokers)
			cfg.Clock = func() time.Time { return time.Unix(0, clock.Load()) }
			cfg.IdleTimeout = time.Minute
			cfg.Published = "tsb"
			cfg.Registerer = prometheus.NewRegistry()
			produce(t, brokers, "sales", testEvent{ID: "e", Store: "s", SKU: "k", TS: day0.Format(time.RFC3339), Qty: 3}.message())
			rp := startProcessor(t, cfg, t.TempDir())
			defer rp.stop(t)
			waitFor(t, 20*time.Second, "the event committed", func() bool { return testutilCounter(rp.p.m.batches) == 1 })
			clock.Store(tc.idle.UnixNano())
			if tc.forecasts > 0 {
				waitFor(t, 20*time.Second, "the idle partition's close committed", func() bool { return testutilCounter(rp.p.m.batches) == 2 })
			} else {
				time.Sleep(3 * cfg.FetchMaxWait) // several idle checks
			}
			if got := kafkatest.ReadTopic(t, brokers, "forecasts", tc.forecasts, time.Second, 10*time.Second); len(got) != tc.forecasts {
				t.Errorf("%d forecasts, want %d", len(got), tc.forecasts)
			}
			if wm := gaugeValue(rp.p.m.watermark.WithLabelValues("0")); wm != float64(tc.watermark.Unix()) {
				t.Errorf("watermark %v, want %v", time.Unix(int64(wm), 0).UTC(), tc.watermark)
			}
		})
	}
}
