package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/trendstream/trendstream/internal/kafkatest"
)

// TestJunkSKUFlood floods the processor with events of distinct SKUs, as a
// misbehaving producer would, and checks that each partition keeps at most
// MaxSeries series in memory while every event still counts: a real
// series evicted by the flood comes back with its history intact.
func TestJunkSKUFlood(t *testing.T) {
	const junk, maxSeries = 20000, 300
	brokers := kafkatest.NewCluster(t, 2, "sales")
	cfg := testConfig(brokers)
	cfg.MaxSeries = maxSeries
	cfg.Published = "tsb"
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg

	real := func(id string, day int, qty float64) kafka.Message {
		return testEvent{ID: id, Store: "S", SKU: "REAL", TS: ts(day, 9), Qty: qty}.message()
	}
	msgs := []kafka.Message{real("r0", 0, 2), real("r1", 1, 3)}
	for i := range junk {
		msgs = append(msgs, testEvent{ID: fmt.Sprintf("j%d", i), Store: "S", SKU: fmt.Sprintf("JUNK-%06d", i),
			TS: ts(1+2*i/junk, 10), Qty: 1}.message())
	}
	msgs = append(msgs, real("r5", 5, 4))
	produce(t, brokers, "sales", msgs...)

	rp := startProcessor(t, cfg, t.TempDir())
	defer rp.stop(t)
	waitFor(t, 60*time.Second, "every event counted", func() bool {
		return testutilCounter(rp.p.m.accepted) == float64(len(msgs))
	})
	for _, p := range []string{"0", "1"} {
		if n := gaugeValue(rp.p.m.series.WithLabelValues(p)); n > maxSeries {
			t.Errorf("partition %s holds %v series in memory, cap %d", p, n, maxSeries)
		}
	}
	if ev := testutilCounter(rp.p.m.evicted); ev < junk-2*maxSeries {
		t.Errorf("%v series evicted, want at least %d", ev, junk-2*maxSeries)
	}
	if rv := testutilCounter(rp.p.m.revived); rv < 1 {
		t.Errorf("the real series was not revived (%v revivals)", rv)
	}
	resp, err := rp.p.Series("S/REAL")
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, b := range resp.Buckets {
		got = append(got, b.Qty)
	}
	for _, o := range resp.Open {
		got = append(got, o.Qty)
	}
	if want := []float64{2, 3, 0, 0, 0, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("S/REAL buckets %v, want %v", got, want)
	}
	junkSeries, err := rp.p.Series("S/JUNK-000000")
	if err != nil || len(junkSeries.Buckets)+len(junkSeries.Open) == 0 {
		t.Errorf("an evicted junk series is not served from the store: %v", err)
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	g.Write(&m)
	return m.GetGauge().GetValue()
}
