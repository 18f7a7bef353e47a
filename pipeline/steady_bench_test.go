package pipeline

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// BenchmarkEncode measures the forecast encoding of one series at a
// close, as the live task does it: the compact form the store keeps, and
// the JSON record rendered from it for the forecast topic.
func BenchmarkEncode(b *testing.B) {
	cfg := DefaultConfig()
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := NewEncoder(spec, cfg.Model.Levels, cfg.FlatPct)
	if err != nil {
		b.Fatal(err)
	}
	part, err := window.NewPartition(cfg.Window)
	if err != nil {
		b.Fatal(err)
	}
	var s *window.Series
	for d := range 10 {
		if s, err = part.Add([]byte("S001/SKU-000001"), &window.Sale{Time: time.Date(2024, 5, 1+d, 12, 0, 0, 0, time.UTC), Qty: float64(d % 3), Price: 2}); err != nil {
			b.Fatal(err)
		}
		part.Advance(func(int64, []*window.Series) error { return nil })
	}
	fc := model.NewForecast(cfg.Model)
	r := rand.New(rand.NewPCG(1, 2))
	for h := range fc.Mean {
		fc.Mean[h] = r.ExpFloat64()
		for j := range fc.Levels {
			fc.Q[h*len(fc.Levels)+j] = fc.Mean[h] * float64(j+1) / 2
		}
	}
	c := &Close{Bucket: s.Closed(), Series: s, Forecasts: []*model.Forecast{fc}, Model: "auto",
		GeneratedAt: time.Date(2024, 5, 12, 0, 0, 0, 0, time.UTC), Watermark: time.Date(2024, 5, 11, 23, 0, 0, 0, time.UTC)}
	var compact, record []byte
	b.ReportAllocs()
	for b.Loop() {
		compact = enc.AppendCompact(compact[:0], c, "mix lstm 0.62 tsb 0.38")
		if record, err = enc.Render(record[:0], s.ID(), compact); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(compact)), "compact_bytes")
	b.ReportMetric(float64(len(record)), "record_bytes")
}

// BenchmarkCloseSteady measures a steady-state daily close of a partition
// of N series with the default forecasting configuration and a month of
// history (too short for the LSTM to train, as in the W1 workload of
// scripts/bench-workloads.sh): each op adds a day's sale to every series,
// closes the day, encodes every published forecast as the live task does
// and adds the commit's state to a reused batch. allocs/op that grow with
// N are allocations per series.
func BenchmarkCloseSteady(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
			s := &benchSink{want: true}
			e, err := NewEngine(cfg, s)
			if err != nil {
				b.Fatal(err)
			}
			if s.enc, err = NewEncoder(e.part.Spec(), cfg.Model.Levels, cfg.FlatPct); err != nil {
				b.Fatal(err)
			}
			ids := make([][]byte, n)
			for i := range ids {
				ids[i] = fmt.Appendf(nil, "S%03d/SKU-%06d", i%500, i)
			}
			r := rand.New(rand.NewPCG(1, 2))
			day0 := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
			sale := window.Sale{Price: 2}
			var batch state.Batch
			day := 0
			step := func() {
				sale.Time = day0.AddDate(0, 0, day)
				day++
				for _, id := range ids {
					sale.Qty = float64(r.IntN(4) * r.IntN(2))
					se, err := e.part.Add(id, &sale)
					if err != nil {
						b.Fatal(err)
					}
					e.markDirty(se)
					if e.part.Ready() {
						if err := e.part.Advance(e.onClose); err != nil {
							b.Fatal(err)
						}
					}
				}
				batch.Reset()
				if err := e.AppendState(&batch, 0, 0, int64(day), false); err != nil {
					b.Fatal(err)
				}
			}
			for range 30 {
				step()
			}
			closes := s.forecasts
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				step()
			}
			if s.forecasts-closes != b.N*n {
				b.Fatalf("%d forecasts in %d closes of %d series", s.forecasts-closes, b.N, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}
