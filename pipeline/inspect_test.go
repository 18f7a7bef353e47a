package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
)

// closeLog records, for one series, the actual of every close and each
// forecaster's forecast made at it.
type closeLog struct {
	id      string
	buckets []int64
	actual  []float64
	fc      [][]model.Forecast // per close, per forecaster
}

var _ Sink = (*closeLog)(nil)

func (l *closeLog) DeadLetter(*Record, Reason, string) error { return nil }
func (l *closeLog) Wants(int64) bool                         { return true }
func (l *closeLog) Closed(c *Close) error {
	if c.Series.ID() != l.id || c.Forecasts == nil {
		return nil
	}
	l.buckets = append(l.buckets, c.Bucket)
	l.actual = append(l.actual, c.Series.QtyTo(nil, 1)[0])
	fcs := make([]model.Forecast, len(c.Forecasts))
	for i, f := range c.Forecasts {
		fcs[i].CopyFrom(f)
	}
	l.fc = append(l.fc, fcs)
	return nil
}

// TestInspectorCandidates runs an engine publishing auto over two months
// of daily sales, committing after every day, and checks what an
// Inspector reads back from the committed state against the forecasts the
// engine made: each candidate's means and quantiles at the latest close,
// and, per horizon, the root mean squared error of its step-h forecasts
// against the actuals (a plain mean: fewer than 1/Alpha scores).
func TestInspectorCandidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	cfg.Candidates, cfg.Fallback = []string{model.NameETS, model.NameTSB, model.NameMA28}, model.NameETS
	const id = "S/A"
	e, db, sink := inspectFixture(t, cfg, id, 60)
	if len(sink.fc) < 40 {
		t.Fatalf("%d closes of %s", len(sink.fc), id)
	}

	in, err := NewInspector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc, found, err := in.Candidates(db, 0, []byte(id))
	if err != nil || !found {
		t.Fatalf("Candidates: found %v, %v", found, err)
	}
	last := len(sink.fc) - 1
	if want := e.Spec().Start(sink.buckets[last]); !sc.Origin.Equal(want) {
		t.Errorf("origin %v, want the last close's %v", sc.Origin, want)
	}
	if want := model.EnsembleHorizons(cfg.Model.Horizon); !slices.Equal(sc.Horizons, want) {
		t.Errorf("horizons %v, want %v", sc.Horizons, want)
	}
	models := e.Models()
	// Before any candidate is scored, auto publishes the fallback alone.
	if auto, fb := sink.fc[10][slices.Index(models, NameAuto)], sink.fc[10][slices.Index(models, cfg.Fallback)]; !slices.Equal(auto.Mean, fb.Mean) {
		t.Errorf("the 11th close published %v, the fallback %s forecast %v", auto.Mean[:3], cfg.Fallback, fb.Mean[:3])
	}
	for c, cand := range sc.Candidates {
		if cand.Name != cfg.Candidates[c] {
			t.Fatalf("candidate %d is %q, want %q", c, cand.Name, cfg.Candidates[c])
		}
		row := slices.Index(models, cand.Name)
		made := &sink.fc[last][row]
		for k, h := range sc.Horizons {
			if want := float64(float32(made.Mean[h-1])); cand.Means[k] != want {
				t.Errorf("%s step %d: mean %v, the engine forecast %v", cand.Name, h, cand.Means[k], want)
			}
			if want := e.Spec().Start(sink.buckets[last] + int64(h)); !sc.Starts[k].Equal(want) {
				t.Errorf("step %d starts %v, want %v", h, sc.Starts[k], want)
			}
			// The step-h forecasts made h closes before a close, against
			// its actual.
			var sum float64
			n := 0
			for i := h; i < len(sink.fc); i++ {
				if sink.buckets[i-h] != sink.buckets[i]-int64(h) {
					continue
				}
				d := sink.actual[i] - float64(float32(sink.fc[i-h][row].Mean[h-1]))
				sum += d * d
				n++
			}
			if want := math.Sqrt(sum / float64(n)); math.Abs(cand.HorizonRMSE[k]-want) > 1e-9*max(1, want) {
				t.Errorf("%s step %d: RMSE %v over the ensemble's scores, %v over the engine's forecasts (%d)", cand.Name, h, cand.HorizonRMSE[k], want, n)
			}
		}
		var want float64
		for _, m := range made.Mean[:7] {
			want += m
		}
		if sc.Window != 7 || cand.WindowTotal != want {
			t.Errorf("%s: total %v over %d buckets, the engine forecast %v over 7", cand.Name, cand.WindowTotal, sc.Window, want)
		}
		if !slices.Equal(cand.Quantiles, made.Q[:len(made.Levels)]) {
			t.Errorf("%s: next-bucket quantiles %v, the engine forecast %v", cand.Name, cand.Quantiles, made.Q[:len(made.Levels)])
		}
		if cand.Scores < 14 || math.IsNaN(cand.RMSE) || cand.PinballScores != len(sink.fc)-1 {
			t.Errorf("%s: %d scores, RMSE %v, %d pinball scores after %d closes", cand.Name, cand.Scores, cand.RMSE, cand.PinballScores, len(sink.fc))
		}
	}

	t.Run("not found", func(t *testing.T) {
		other := cfg
		other.Candidates = []string{model.NameETS, model.NameTSB}
		oin, err := NewInspector(other)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			in   *Inspector
			part int32
			id   string
		}{
			{"unknown series", in, 0, "S/NOPE"},
			{"other partition", in, 1, id},
			{"other candidates", oin, 0, id},
		} {
			if sc, found, err := tc.in.Candidates(db, tc.part, []byte(tc.id)); found || sc != nil || err != nil {
				t.Errorf("%s: %v, found %v, %v", tc.name, sc, found, err)
			}
		}
	})
	t.Run("fixed model", func(t *testing.T) {
		fixed := cfg
		fixed.Published = model.NameTSB
		if _, err := NewInspector(fixed); !errors.Is(err, ErrNoEnsemble) {
			t.Errorf("NewInspector publishing tsb: %v, want ErrNoEnsemble", err)
		}
	})
}

// inspectFixture runs an engine with cfg over days of daily sales of series id
// and another, committing to a memStore after every day, and returns the
// engine, the store and what the engine made for id.
func inspectFixture(tb testing.TB, cfg Config, id string, days int) (*Engine, memStore, *closeLog) {
	tb.Helper()
	sink := &closeLog{id: id}
	e, err := NewEngine(cfg, sink)
	if err != nil {
		tb.Fatal(err)
	}
	e.BeginBatch()
	db := memStore{}
	day0 := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	off := int64(0)
	for d := range days {
		first := off
		for _, s := range []string{id, "S/B"} {
			qty := 1 + (d*7+len(s)*3)%5
			if d%7 == 6 {
				qty += 4 // a weekly peak
			}
			v := fmt.Sprintf(`{"event_id":"%s-%d","store":"S","sku":"%s","ts":"%s","qty":%d}`, s, d, s[2:], day0.AddDate(0, 0, d).Format(time.RFC3339), qty)
			if err := e.Process(&Record{Offset: off, Key: []byte(s), Value: []byte(v)}); err != nil {
				tb.Fatal(err)
			}
			off++
		}
		var w writes
		if err := e.AppendState(&w, 0, first, off, false); err != nil {
			tb.Fatal(err)
		}
		db.apply(w.ahead)
		db.apply(w.final)
	}
	return e, db, sink
}

// BenchmarkInspectorCandidates measures what the console's series page
// adds to a lookup: reading and decoding a series' committed ensemble
// state, with the default candidates.
func BenchmarkInspectorCandidates(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	_, db, _ := inspectFixture(b, cfg, "S/A", 60)
	in, err := NewInspector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, found, err := in.Candidates(db, 0, []byte("S/A")); !found || err != nil {
		b.Fatalf("found %v, %v", found, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := in.Candidates(db, 0, []byte("S/A")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(db[string(key(nil, 0, kindSelect, []byte("S/A")))])), "state_bytes")
}
