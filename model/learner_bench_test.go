package model

import (
	"fmt"
	"testing"
)

// The benchmarks use the shapes of ANCHORS.md: L = 56, H = 28, three
// quantile levels, 8 input features (no Calendar: 6 base features plus
// sin/cos of the weekday), hidden 32 and 64, 1 and 2 layers (Transformer:
// blocks of width 32 and 64 with the default 2 and 4 heads). A training
// step is one Learn call with one minibatch of the given size
// (StepsPerClose 1): features, forward, backward (through time), clipping
// and AdamW, on one goroutine like PyTorch's single-thread figures.
var benchShapes = []struct{ layers, hidden int }{{1, 32}, {2, 32}, {1, 64}, {2, 64}}

func BenchmarkLSTMTrain(b *testing.B)        { benchTrain(b, NameLSTM) }
func BenchmarkGRUTrain(b *testing.B)         { benchTrain(b, NameGRU) }
func BenchmarkTransformerTrain(b *testing.B) { benchTrain(b, NameTransformer) }

func benchTrain(b *testing.B, name string) {
	for _, s := range benchShapes {
		for _, batch := range []int{64, 413} {
			b.Run(fmt.Sprintf("%dx%d/B=%d", s.layers, s.hidden, batch), func(b *testing.B) {
				m := newLearner(b, name, LearnerConfig{Layers: s.layers, Hidden: s.hidden, MiniBatch: batch}, Config{Horizon: 28})
				in := lstmTestSeries(batch, 56+28+28, 7)
				m.Learn(in) // size the buffers
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					m.Learn(in)
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkLSTMForecast runs every window in full, as PyTorch does; so do
// BenchmarkGRUForecast and BenchmarkTransformerForecast.
func BenchmarkLSTMForecast(b *testing.B)        { benchForecast(b, NameLSTM, false) }
func BenchmarkGRUForecast(b *testing.B)         { benchForecast(b, NameGRU, false) }
func BenchmarkTransformerForecast(b *testing.B) { benchForecast(b, NameTransformer, false) }

// BenchmarkLSTMForecastCarried measures daily forecasting as a pipeline
// runs it: every iteration each series' window advances by one bucket, so
// with the default Refresh of 7 one forecast in seven runs the whole
// window and the others step the carried state. BenchmarkGRUForecastCarried
// likewise.
func BenchmarkLSTMForecastCarried(b *testing.B) { benchForecast(b, NameLSTM, true) }
func BenchmarkGRUForecastCarried(b *testing.B)  { benchForecast(b, NameGRU, true) }

func benchForecast(b *testing.B, name string, carried bool) {
	const days = 512
	for _, s := range benchShapes {
		for _, batch := range []int{64, 413} {
			b.Run(fmt.Sprintf("%dx%d/B=%d", s.layers, s.hidden, batch), func(b *testing.B) {
				cfg := Config{Horizon: 28}
				m := newLearner(b, name, LearnerConfig{Layers: s.layers, Hidden: s.hidden}, cfg)
				dst := lstmForecasts(cfg, batch)
				long := lstmTestSeries(batch, 56+days, 7)
				for i := range long {
					long[i].Start = 0
				}
				in := lstmSlide(long, 56, 56)
				next := func(int) []Input { return in }
				if carried {
					next = func(i int) []Input { return lstmSlideInto(in, long, 56+i%days, 56) }
				} else {
					for i := range in {
						in[i].Key = 0
					}
				}
				for i := range 7 { // buffers sized; states with spread refreshes
					m.ForecastBatch(dst, next(i))
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					m.ForecastBatch(dst, next(7+i))
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "forecasts/s")
			})
		}
	}
}
