package backtest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/source"
)

// TestDecisionsOnSynthetic backtests the synthetic generator (seed 1, 4
// stores of 100 SKUs, 300 days) with ETS published over 230 rolling
// origins, and holds the report's decision figures: the trend classes'
// precision and recall against the generator's truth to floors a little
// below what the command measures (backtest --synthetic --model ets
// --models ets --rolling 230), and the achieved cycle service level of
// every target within 2.5 points of it.
func TestDecisionsOnSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 300 days of 400 series")
	}
	const days = 300
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	gen, err := source.NewSynthetic(source.SynthConfig{Stores: 4, SKUs: 100, Seed: 1, Days: days, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Published, cfg.Candidates, cfg.Also = model.NameETS, nil, nil
	cfg.Origin = start.AddDate(0, 0, days-1-cfg.Model.Horizon)
	cfg.Rolling = 230
	cfg.Truth = &Truth{Items: gen.Truth(), Start: start}
	res, err := Run(context.Background(), cfg, gen)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Decisions
	if d == nil || len(d.Trends) != len(decision.Classes) || len(d.ServiceLevels) != len(ServiceTargets) {
		t.Fatalf("decisions %+v", d)
	}
	floors := map[string]struct{ precision, recall float64 }{
		"rising":   {0.4, 0.25}, // measured 0.47 and 0.31
		"falling":  {0.5, 0.2},  // 0.61 and 0.24
		"emerging": {0.85, 0.6}, // 0.93 and 0.71
		"fading":   {0.75, 0.9}, // 0.85 and 1.00
	}
	for _, q := range d.Trends {
		t.Logf("%s: precision %.2f (%d flags), recall %.2f (%d/%d)", q.Class, q.Precision, q.Flags, q.Recall, q.Detected, q.Episodes)
		f := floors[q.Class]
		if q.Episodes < 10 || q.Precision < f.precision || q.Recall < f.recall {
			t.Errorf("%s: precision %.2f, recall %.2f of %d episodes; floors %.2f and %.2f", q.Class, q.Precision, q.Recall, q.Episodes, f.precision, f.recall)
		}
	}
	for _, s := range d.ServiceLevels {
		t.Logf("target %.2f: cycle %.3f, lead time %.3f, safety stock %.1f, %d plans", s.Target, s.Cycle, s.Lead, s.SafetyStock, s.Plans)
		if math.Abs(s.Cycle-s.Target) > 0.025 || s.Plans == 0 || s.SafetyStock <= 0 {
			t.Errorf("target %.2f: cycle service level %.3f over %d plans, safety stock %v", s.Target, s.Cycle, s.Plans, s.SafetyStock)
		}
	}
}

// TestTrendQuality scores hand-made flags against a one-item truth: a
// launch on day 10 ramping over 20 days, discontinued on day 80 after a
// 10-day run-down.
func TestTrendQuality(t *testing.T) {
	truth := &Truth{Items: []source.ItemTruth{{Store: "S", SKU: "K", Rate: 10, Launch: 10, Ramp: 20, Stop: 80, Fade: 10}}}
	flag := func(c decision.Class, day int64) TrendFlag {
		return TrendFlag{Series: "S/K", Class: c, Bucket: 100 + day}
	}
	flags := map[TrendFlag]bool{
		flag(decision.Emerging, 12):                              true, // in the ramp: a hit, detects the launch
		flag(decision.Emerging, 50):                              true, // 20 days after the ramp: a miss
		flag(decision.Fading, 75):                                true, // in the run-down: a hit, detects it
		flag(decision.Rising, 60):                                true, // flat for two weeks before: a miss
		{Series: "other/K", Class: decision.Rising, Bucket: 140}: true, // not in the truth: ignored
	}
	got := TrendQuality(truth, flags, 100, 100+5, 100+95, 10)
	want := map[string][4]int{ // flags, hits, episodes, detected
		"rising":   {1, 0, 0, 0},
		"falling":  {0, 0, 0, 0},
		"emerging": {2, 1, 1, 1},
		"fading":   {1, 1, 1, 1},
	}
	for _, q := range got {
		if w := want[q.Class]; [4]int{q.Flags, q.Hits, q.Episodes, q.Detected} != w {
			t.Errorf("%s: flags %d, hits %d, episodes %d, detected %d; want %v", q.Class, q.Flags, q.Hits, q.Episodes, q.Detected, w)
		}
	}
}
