package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

// TestConsoleExplanation runs a processor on the in-process broker and
// reads series pages through the console's backend: with a learner
// published, a page carries the learner's explanation, whose factors are
// the /v1/series/{store}/{sku}/explain attribution by input group, largest
// first, and a second read of the same forecast reuses it rather than
// explaining again; with a classical model published a page has no
// explanation and no error.
func TestConsoleExplanation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a processor")
	}
	for _, tc := range []struct {
		published string
		explained bool
	}{
		{model.NameLSTM, true},
		{model.NameTSB, false},
	} {
		t.Run(tc.published, func(t *testing.T) {
			brokers := devCluster(t, 2)
			var msgs []kafka.Message
			for day := range 12 {
				for i, sku := range []string{"A", "B", "C"} {
					msgs = append(msgs, consoleEvent(strings.Repeat("x", i+1)+string(rune('a'+day)), "S1", sku, day, float64(2+(day*(i+3))%5)))
				}
			}
			produceAll(t, brokers, msgs)

			cfg := stream.DefaultConfig()
			cfg.Brokers = brokers
			cfg.Published = tc.published
			cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 7
			cfg.Limits.MaxPast = -1
			cfg.BatchWait = 5 * time.Millisecond
			reg := prometheus.NewRegistry()
			svc, err := startService(slog.New(slog.DiscardHandler), cfg, state.DefaultConfig(t.TempDir()), webConfig{Addr: "127.0.0.1:0"}, reg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			b, err := newConsoleBackend(svc.proc, svc.db, reg, "test", nil)
			if err != nil {
				t.Fatal(err)
			}

			// Days 0-10 close: the last forecast is from day 10.
			last := time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)
			var s *console.Series
			deadline := time.Now().Add(60 * time.Second)
			for {
				// Unknown or another's until the group assigns the
				// partitions and the series' events are processed.
				s, err = b.Series(ctx, "S1", "B")
				if err == nil && s.Forecast != nil && s.Forecast.Origin.Equal(last) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no forecast from %v within 60s: %v, %+v", last, err, s)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !tc.explained {
				if s.Explanation != nil {
					t.Errorf("%s published: explanation %+v", tc.published, s.Explanation)
				}
				return
			}
			exp := s.Explanation
			if exp == nil {
				t.Fatal("no explanation with a learner published")
			}
			resp, err := svc.proc.Explain(ctx, "S1/B", model.ExplainConfig{})
			if err != nil {
				t.Fatal(err)
			}
			a := resp.Attribution
			if !strings.Contains(exp.Summary, "lstm") || !strings.Contains(exp.Summary, quantity(a.Forecast)) || !strings.Contains(exp.Summary, quantity(a.Baseline)) {
				t.Errorf("summary %q does not give the learner, its forecast %v and the baseline's %v", exp.Summary, a.Forecast, a.Baseline)
			}
			var sum float64
			for _, f := range exp.Factors {
				sum += f.Effect
			}
			if want := a.Forecast - a.Baseline - a.Residual; math.Abs(sum-want) > 1e-9*max(1, math.Abs(want)) {
				t.Errorf("factors sum to %v, the attribution to %v", sum, want)
			}
			if len(exp.Factors) < 2 || !slices.IsSortedFunc(exp.Factors, func(x, y console.Factor) int {
				return -cmpAbs(x.Effect, y.Effect)
			}) {
				t.Errorf("factors not by size, largest first: %+v", exp.Factors)
			}
			again, err := b.Series(ctx, "S1", "B")
			if err != nil {
				t.Fatal(err)
			}
			if again.Explanation != exp {
				t.Error("the same forecast was explained again")
			}
		})
	}
}

func cmpAbs(x, y float64) int {
	switch ax, ay := math.Abs(x), math.Abs(y); {
	case ax < ay:
		return -1
	case ax > ay:
		return 1
	}
	return 0
}

// countingExplainer answers explanations at a fixed origin, or err, and
// counts the calls.
type countingExplainer struct {
	origin time.Time
	err    error
	calls  int
}

func (c *countingExplainer) Explain(_ context.Context, id string, _ model.ExplainConfig) (*stream.ExplainResponse, error) {
	c.calls++
	if c.err != nil {
		return nil, c.err
	}
	return &stream.ExplainResponse{Series: id, Origin: c.origin, Model: model.NameLSTM, Learner: model.NameLSTM, LearnerWeight: 1,
		Attribution: &stream.AttributionJSON{Buckets: 7, Steps: 32, Forecast: 3, Baseline: 2, Groups: map[string]float64{"trend": 1}}}, nil
}

// TestExplanationsKept checks what the console keeps of explanations: an
// explanation or "no learner" until the origin moves, never a not-found
// (a rebalance moving the partition is over by the next update), and at
// most explanationCacheSize series, dropping one per new series.
func TestExplanationsKept(t *testing.T) {
	origin := time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)
	page := func(at time.Time) *console.Series { return &console.Series{Forecast: &console.Forecast{Origin: at}} }
	tests := []struct {
		name      string
		err       error
		calls     int // after three reads at one origin and one at the next
		explained bool
	}{
		{"explained", nil, 2, true},
		{"no learner", stream.ErrNoLearner, 2, false},
		{"not served here", stream.ErrNotFound, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := &countingExplainer{origin: origin, err: tc.err}
			e := newExplanations(x)
			for i := range 4 {
				at := origin
				if i == 3 {
					at, x.origin = origin.AddDate(0, 0, 1), origin.AddDate(0, 0, 1)
				}
				s := page(at)
				if err := e.fill(context.Background(), s, "S/A"); err != nil {
					t.Fatal(err)
				}
				if (s.Explanation != nil) != tc.explained {
					t.Errorf("read %d: explanation %+v", i, s.Explanation)
				}
			}
			if x.calls != tc.calls {
				t.Errorf("%d explanations, want %d", x.calls, tc.calls)
			}
		})
	}
	t.Run("bounded", func(t *testing.T) {
		x := &countingExplainer{origin: origin}
		e := newExplanations(x)
		for i := range explanationCacheSize + 10 {
			if err := e.fill(context.Background(), page(origin), fmt.Sprintf("S/%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if len(e.kept) != explanationCacheSize {
			t.Errorf("%d kept, want %d", len(e.kept), explanationCacheSize)
		}
		// The last series' explanation is kept.
		calls := x.calls
		if err := e.fill(context.Background(), page(origin), fmt.Sprintf("S/%d", explanationCacheSize+9)); err != nil || x.calls != calls {
			t.Errorf("the newest explanation was not kept: %v, %d calls after %d", err, x.calls, calls)
		}
	})
}
