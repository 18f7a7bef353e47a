package stream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/trendstream/trendstream/internal/kafkatest"
)

// TestCompression checks that the forecasts and the changelog are written
// in record batches of the configured codec (the changelog's commit
// markers go alone, uncompressed), and that forecasts read back intact.
func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		codec Compression
		attr  uint8 // the batch attribute's compression bits
	}{
		{CompressionNone, 0}, {CompressionGzip, 1}, {CompressionSnappy, 2}, {CompressionLz4, 3}, {CompressionZstd, 4},
	} {
		t.Run(string(tc.codec), func(t *testing.T) {
			brokers := kafkatest.NewCluster(t, 1, "sales")
			cfg := testConfig(brokers)
			cfg.Partitions = 1
			cfg.Compression = tc.codec
			cfg.Registerer = prometheus.NewRegistry()
			var msgs = []testEvent{
				{ID: "a", Store: "s", SKU: "k1", TS: ts(0, 10), Qty: 2},
				{ID: "b", Store: "s", SKU: "k2", TS: ts(0, 11), Qty: 1},
				{ID: "c", Store: "s", SKU: "k1", TS: ts(1, 10), Qty: 1},
			}
			for _, e := range msgs {
				produce(t, brokers, "sales", e.message())
			}
			rp := startProcessor(t, cfg, t.TempDir())
			defer rp.stop(t)
			waitFor(t, 30*time.Second, "every record committed", func() bool {
				return testutilCounter(rp.p.m.consumed) == 3 && testutilCounter(rp.p.m.batches) > 0
			})
			// codecs reads topic for two seconds and counts its records
			// by codec.
			codecs := func(topic string) map[uint8]int {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
					kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				seen := map[uint8]int{}
				for ctx.Err() == nil {
					fs := cl.PollFetches(ctx)
					fs.EachRecord(func(r *kgo.Record) {
						seen[r.Attrs.CompressionType()]++
						if topic == "forecasts" && !json.Valid(r.Value) {
							t.Errorf("forecast record %q is not JSON", r.Value)
						}
					})
				}
				return seen
			}
			if got := codecs("forecasts"); got[tc.attr] != 2 || len(got) != 1 {
				t.Errorf("forecast records by codec %v, want 2 of codec %d", got, tc.attr)
			}
			if got := codecs("test.changelog"); got[tc.attr] == 0 {
				t.Errorf("changelog records by codec %v, want some of codec %d", got, tc.attr)
			}
		})
	}
}
