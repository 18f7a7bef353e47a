package model

import (
	"math"
	"testing"
)

func forecastOf(mean, q10, q50, q90 []float64) *Forecast {
	f := &Forecast{Mean: mean, Levels: DefaultLevels}
	for h := range mean {
		f.Q = append(f.Q, q10[h], q50[h], q90[h])
	}
	return f
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// TestEvaluatorHandComputed checks every metric on a case worked out by
// hand: history 2, 0, 4, 1 (first differences -2, 4, -3: mean square 29/3,
// mean absolute 3), forecast at the last bucket for two steps, actuals 3, 0.
func TestEvaluatorHandComputed(t *testing.T) {
	e, err := NewEvaluator(EvalConfig{Models: []string{"m"}, Horizon: 2, Levels: DefaultLevels, Origin: 3, Rolling: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, y := range []float64{2, 0, 4, 1} {
		e.Observe(0, y)
	}
	e.Forecast(0, 3, []*Forecast{forecastOf([]float64{1, 2}, []float64{0, 0}, []float64{1, 1}, []float64{2, 3})})
	// A constant series: zero denominators, so no RMSSE or SPL, but its
	// errors count in MAE, RMSE, bias and coverage.
	for range 3 {
		e.Observe(1, 5)
	}
	e.Forecast(1, 3, []*Forecast{forecastOf([]float64{5, 5}, []float64{4, 4}, []float64{5, 5}, []float64{6, 6})})
	e.Observe(0, 3)
	e.Observe(1, 5)
	e.Observe(0, 0)
	e.Observe(1, 5)
	fixed, rolling := e.Result()
	for name, m := range map[string]Metrics{"fixed": fixed["m"], "rolling": rolling["m"]} {
		near(t, name+" mae", m.MAE, 1)              // (2 + 2 + 0 + 0) / 4
		near(t, name+" rmse", m.RMSE, math.Sqrt(2)) // sqrt(8 / 4)
		near(t, name+" bias", m.Bias, 0)
		near(t, name+" rmsse", m.RMSSE, math.Sqrt(12.0/29))
		near(t, name+" wrmsse", m.WRMSSE, math.Sqrt(12.0/29))
		near(t, name+" spl", m.SPL, 1.0/6) // pinball 2.2 + 0.8, / 3 levels / 2 steps / scale 3
		near(t, name+" wspl", m.WSPL, 1.0/6)
		near(t, name+" coverage80", m.Coverage80, 0.75)
		near(t, name+" calibration 0.1", m.Calibration["0.1"], 0.25)
		near(t, name+" calibration 0.9", m.Calibration["0.9"], 0.75)
		if m.SeriesScored != 1 || m.Forecasts != 2 || m.Points != 4 {
			t.Errorf("%s: scored %d, forecasts %d, points %d", name, m.SeriesScored, m.Forecasts, m.Points)
		}
		if len(m.ByHorizon) != 2 {
			t.Fatalf("%s: by horizon %+v", name, m.ByHorizon)
		}
		near(t, name+" h1 mae", m.ByHorizon[0].MAE, 1)
		near(t, name+" h2 rmse", m.ByHorizon[1].RMSE, math.Sqrt(2))
	}
}

// TestEvaluatorRollingAndWeights scores two origins of two series with
// different weights and a partial horizon at the end of the data.
func TestEvaluatorRollingAndWeights(t *testing.T) {
	e, _ := NewEvaluator(EvalConfig{Models: []string{"a", "b"}, Horizon: 2, Levels: DefaultLevels, Origin: 2, Rolling: 2, WeightWindow: 2})
	zero := []float64{0, 0}
	// Series 0: 1, 3, 1, then 3, (end). Series 1: 10, 20, 10, then 20, (end).
	obs := [][]float64{{1, 3, 1, 3}, {10, 20, 10, 20}}
	for step := range 4 {
		for id := range 2 {
			e.Observe(id, obs[id][step])
			if step == 1 || step == 2 {
				y := obs[id][step]
				fa := forecastOf([]float64{y, y}, zero, []float64{y, y}, []float64{2 * y, 2 * y})
				e.Forecast(id, int64(step), []*Forecast{fa, fa})
			}
		}
	}
	if e.Evaluated(0) || !e.Evaluated(1) || !e.Evaluated(2) || e.Evaluated(3) {
		t.Error("Evaluated disagrees with Origin and Rolling")
	}
	e.Finish()
	fixed, rolling := e.Result()
	// Fixed origin 2: one step each: series 0 forecast 1, actual 3, scale
	// sq 4, abs 2; series 1 forecast 10, actual 20, scale sq 100, abs 10.
	f := fixed["b"]
	near(t, "fixed rmsse", f.RMSSE, (1+1)/2.0)
	near(t, "fixed mae", f.MAE, (2+10)/2.0)
	// Weights: units in the last 2 buckets at origin 2: 4 and 30.
	near(t, "fixed wrmsse", f.WRMSSE, 1)
	// Rolling adds origin 1 (two steps, actuals 1 and 3 for series 0):
	// errors 2 and 0, scale sq (4/1): RMSSE sqrt(2/4).
	r := rolling["a"]
	near(t, "rolling rmsse", r.RMSSE, (math.Sqrt(0.5)+math.Sqrt(0.5)+1+1)/4)
	near(t, "rolling wrmsse", r.WRMSSE, (4*math.Sqrt(0.5)+30*math.Sqrt(0.5)+4+30)/(4+30+4+30))
	if r.Forecasts != 4 || r.Points != 6 {
		t.Errorf("rolling forecasts %d points %d, want 4 and 6", r.Forecasts, r.Points)
	}
}

// TestEvaluatorMerge checks that evaluating two series in two evaluators
// and merging gives the result of one evaluator over both.
func TestEvaluatorMerge(t *testing.T) {
	cfg := EvalConfig{Models: []string{"m"}, Horizon: 2, Levels: DefaultLevels, Origin: 2, Rolling: 2}
	one, _ := NewEvaluator(cfg)
	parts := []*Evaluator{nil, nil}
	for i := range parts {
		parts[i], _ = NewEvaluator(cfg)
	}
	obs := [][]float64{{1, 3, 1, 3, 0}, {10, 20, 10, 25, 5}}
	for step := range 5 {
		for id := range 2 {
			y := obs[id][step]
			one.Observe(id, y)
			parts[id].Observe(0, y)
			if step >= 1 {
				f := forecastOf([]float64{y, y + 1}, []float64{0, 0}, []float64{y, y}, []float64{2 * y, 2 * y})
				one.Forecast(id, int64(step), []*Forecast{f})
				parts[id].Forecast(0, int64(step), []*Forecast{f})
			}
		}
	}
	one.Finish()
	for _, p := range parts {
		p.Finish()
	}
	if err := parts[0].Merge(parts[1]); err != nil {
		t.Fatal(err)
	}
	wf, wr := one.Result()
	gf, gr := parts[0].Result()
	for name, pair := range map[string][2]Metrics{"fixed": {wf["m"], gf["m"]}, "rolling": {wr["m"], gr["m"]}} {
		want, got := pair[0], pair[1]
		near(t, name+" wrmsse", got.WRMSSE, want.WRMSSE)
		near(t, name+" spl", got.SPL, want.SPL)
		near(t, name+" rmse", got.RMSE, want.RMSE)
		if got.SeriesScored != want.SeriesScored || got.Points != want.Points {
			t.Errorf("%s: merged %d series %d points, want %d and %d", name, got.SeriesScored, got.Points, want.SeriesScored, want.Points)
		}
	}
	other, _ := NewEvaluator(EvalConfig{Models: []string{"x"}, Horizon: 2, Levels: DefaultLevels})
	if err := one.Merge(other); err == nil {
		t.Error("merged evaluators of different models")
	}
}

func TestEvaluatorConfig(t *testing.T) {
	for _, cfg := range []EvalConfig{
		{Horizon: 2, Levels: DefaultLevels},
		{Models: []string{"m"}, Levels: DefaultLevels},
		{Models: []string{"m"}, Horizon: 2, Levels: []float64{0.5}},
	} {
		if _, err := NewEvaluator(cfg); err == nil {
			t.Errorf("NewEvaluator(%+v) succeeded", cfg)
		}
	}
}

func TestPinball(t *testing.T) {
	for _, tc := range []struct{ q, y, p, want float64 }{
		{0.9, 5, 3, 1.8}, {0.9, 3, 5, 0.2}, {0.5, 2, 2, 0}, {0.1, 0, 1, 0.9},
	} {
		near(t, "pinball", Pinball(tc.q, tc.y, tc.p), tc.want)
	}
}
