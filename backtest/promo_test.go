package backtest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/source"
)

// TestPromoKnownOnSynthetic backtests the synthetic generator with its
// promotion calendar known and checks the promotion report: the lifts
// estimated recover the generator's, and the plan makes the published
// forecast better on promotion days.
//
// The generator multiplies a promoted item's demand by a lift drawn
// uniformly from [1.5, 2.5] per promotion, 2 on average (the promotion's
// 20% lower price is recorded but does not move its demand).
func TestPromoKnownOnSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 240 days of 120 series twice")
	}
	const days = 240
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	synth := source.SynthConfig{Stores: 2, SKUs: 60, Seed: 3, Days: days, Start: start}
	cfg := DefaultConfig()
	cfg.Published, cfg.Candidates, cfg.Also = model.NameETS, nil, nil
	cfg.Decisions.On = false
	cfg.Origin = start.AddDate(0, 0, days-1-cfg.Model.Horizon)
	cfg.Rolling = 100
	gen, err := source.NewSynthetic(synth)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PromoKnown, err = ReadPromoCalendar(gen, cfg.Config); err != nil {
		t.Fatal(err)
	}
	gen, _ = source.NewSynthetic(synth)
	res, err := Run(context.Background(), cfg, gen)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Promotions
	if p == nil {
		t.Fatal("no promotion report")
	}
	t.Logf("plain %+v", p.Plain)
	t.Logf("planned %+v", p.Planned)
	t.Logf("lifts %+v, gains: promotion days %.3f, overall %.3f", p.Lifts, p.PromoGain, p.OverallGain)
	const truth = 2
	if p.Lifts.Series < 50 || math.Abs(p.Lifts.Median/truth-1) > 0.1 || math.Abs(p.Lifts.Pooled/truth-1) > 0.1 {
		t.Errorf("lifts %+v, want a median and a pooled lift within 10%% of %v", p.Lifts, truth)
	}
	if p.Plain.PromoForecasts == 0 || p.Plain.Forecasts != p.Planned.Forecasts {
		t.Errorf("scored %d/%d forecasts, %d on promotion days", p.Plain.Forecasts, p.Planned.Forecasts, p.Plain.PromoForecasts)
	}
	if p.PromoGain < 0.1 || p.OverallGain <= 0 {
		t.Errorf("the plan reduced the WRMSSE by %.3f on promotion days and %.3f overall, want at least 0.1 and more than 0", p.PromoGain, p.OverallGain)
	}
	if m := res.Rolling[NamePublished]; math.Abs(m.WRMSSE-p.Planned.WRMSSE) > 1e-9 {
		t.Errorf("published WRMSSE %v, the planned one %v: the report's published forecast is not the planned one", m.WRMSSE, p.Planned.WRMSSE)
	}
}
