package pipeline

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/trendstream/trendstream/window"
)

// BenchmarkClose measures one daily bucket close of a partition holding
// many series with the default forecasting configuration: the LSTM trains
// on every series and every forecaster forecasts every one, auto picks the
// published forecast, and the forecast records are encoded. Before the
// timer starts every series gets 112 days of intermittent history, closed
// without forecasting. The series count is CLOSE_SERIES (default 100,000);
// scripts/bench-close.sh runs it on one core. The measured close is the
// LSTM's first, which runs every series' window in full, as after a
// restart; next_close_s reports the close after it, where the LSTM steps
// the carried states of most series (see model.LearnerConfig.Refresh).
func BenchmarkClose(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CLOSE_SERIES")); err == nil && v > 0 {
		n = v
	}
	for range b.N {
		b.StopTimer()
		s := &benchSink{}
		cfg := DefaultConfig()
		e, err := NewEngine(cfg, s)
		if err != nil {
			b.Fatal(err)
		}
		// Warm up with TSB alone: the LSTM would train at every close.
		full := e.roster
		warm := testConfig().Forecasting
		if e.roster, err = newRoster(&warm, e.part.Spec()); err != nil {
			b.Fatal(err)
		}
		if s.enc, err = NewEncoder(e.part.Spec(), cfg.Model.Levels, cfg.FlatPct); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		day0 := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
		ids := make([][]byte, n)
		for i := range ids {
			ids[i] = fmt.Appendf(nil, "S%03d/SKU-%06d", i%500, i)
		}
		sale := window.Sale{Price: 2}
		var next time.Time
		var nextClose time.Duration
		var steps int
		for d := range 114 {
			s.want = false
			sale.Time = day0.AddDate(0, 0, d)
			for i, id := range ids {
				sale.Qty = float64(r.IntN(4) * r.IntN(2))
				if d >= 112 && i == 0 {
					// The first event of day 112 closes day 111: that
					// close is the one measured; day 113's closes the next.
					e.roster = full
					s.want = true
					if d == 112 {
						b.StartTimer()
					} else {
						next = time.Now()
					}
				}
				if _, err := e.part.Add(id, &sale); err != nil {
					b.Fatal(err)
				}
				if e.part.Ready() {
					if err := e.part.Advance(e.onClose); err != nil {
						b.Fatal(err)
					}
				}
				if d == 112 && i == 0 {
					b.StopTimer()
					steps = e.roster.learnAll.Steps
				}
				if d == 113 && i == 0 {
					nextClose = time.Since(next)
				}
			}
		}
		if s.forecasts != 2*n {
			b.Fatalf("%d forecasts at the two measured closes, want %d", s.forecasts, 2*n)
		}
		b.ReportMetric(nextClose.Seconds(), "next_close_s")
		b.ReportMetric(float64(n), "series")
		b.ReportMetric(float64(steps), "train_steps")
	}
}

// benchSink encodes the published forecast of each series, as the live
// task does (its compact form and the record rendered from it), and
// counts.
type benchSink struct {
	want      bool
	forecasts int
	enc       *Encoder
	buf       []byte
	compact   []byte
}

func (s *benchSink) DeadLetter(*Record, Reason, string) error { return nil }
func (s *benchSink) Wants(int64) bool                         { return s.want }
func (s *benchSink) Closed(c *Close) error {
	if c.Forecasts == nil {
		return nil
	}
	s.forecasts++
	s.compact = s.enc.AppendClose(s.compact[:0], c)
	var err error
	s.buf, err = s.enc.Render(s.buf[:0], c.Series.ID(), s.compact)
	return err
}
