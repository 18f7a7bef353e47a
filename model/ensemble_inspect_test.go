package model

import (
	"math"
	"testing"
)

// rampForecast forecasts base+h at step h (0-based) with a band of
// base+h-1, base+h, base+h+2 for each step.
func rampForecast(base float64, steps int) *Forecast {
	f := &Forecast{Mean: make([]float64, steps), Q: make([]float64, 3*steps), Levels: DefaultLevels}
	for h := range steps {
		m := base + float64(h)
		f.Mean[h] = m
		f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = m-1, m, m+2
	}
	return f
}

// TestEnsembleInspect checks what Inspect reads from a state against the
// forecasts fed to Update and the errors they make on a series selling 2
// a bucket: candidate c forecasts 2+c+h at step h, so its step-h error is
// c+h-1 at every score.
func TestEnsembleInspect(t *testing.T) {
	tests := []struct {
		name     string
		horizons []int
		updates  int   // at buckets 100, 101, ...
		gap      int64 // then one more update this many buckets later, when > 0
	}{
		{"default horizons", nil, 40, 0},
		{"horizons 1 and 3", []int{1, 3}, 10, 0},
		{"after a gap", []int{1, 3}, 10, 5},
		{"after a gap the step-3 forecasts span", []int{1, 3}, 10, 3},
		{"one update", []int{1, 7}, 1, 0},
	}
	const steps, n = 28, 3
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEnsemble(EnsembleConfig{Candidates: n, Horizons: tc.horizons})
			if err != nil {
				t.Fatal(err)
			}
			st := e.NewState()
			if _, ok, cands := e.Inspect(st); ok || !math.IsNaN(cands[0].Means[0]) || cands[0].Scores != 0 || !math.IsNaN(cands[0].RMSE) {
				t.Fatalf("a new state: ok %v, %+v", ok, cands[0])
			}
			fcs := make([]*Forecast, n)
			for c := range fcs {
				fcs[c] = rampForecast(2+float64(c), steps)
			}
			dst := NewForecast(Config{Horizon: steps, Levels: DefaultLevels})
			scratch := make([]float64, 2*n+1)
			all := []bool{true, true, true}
			var recent []float64
			last := int64(100)
			for b := range int64(tc.updates) {
				recent = append(recent, 2)
				last = 100 + b
				e.Update(st, last, recent, fcs, all, dst, scratch)
			}
			scores := make([]int, len(e.Horizons())) // per horizon
			for k, h := range e.Horizons() {
				scores[k] = max(0, tc.updates-h)
			}
			if tc.gap > 0 {
				last += tc.gap
				for k, h := range e.Horizons() {
					if int64(h) >= tc.gap && int64(h)-tc.gap < int64(tc.updates) {
						scores[k]++
					}
				}
				recent = append(recent, 2)
				e.Update(st, last, recent, fcs, all, dst, scratch)
			}
			b, _ := st.AppendBinary(nil)
			decoded, err := e.DecodeState(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []*EnsembleState{st, decoded} {
				latest, ok, cands := e.Inspect(s)
				if !ok || latest != last || len(cands) != n {
					t.Fatalf("latest %d, ok %v, %d candidates; want %d, true, %d", latest, ok, len(cands), last, n)
				}
				for c, cd := range cands {
					fewest := math.MaxInt
					var mse float64
					for k, h := range e.Horizons() {
						if want := fcs[c].Mean[h-1]; cd.Means[k] != want {
							t.Errorf("candidate %d step %d: mean %v, want %v", c, h, cd.Means[k], want)
						}
						fewest = min(fewest, scores[k])
						errH := float64(c + h - 1)
						mse += errH * errH
						if scores[k] == 0 {
							if !math.IsNaN(cd.HorizonRMSE[k]) {
								t.Errorf("candidate %d step %d: RMSE %v before any score", c, h, cd.HorizonRMSE[k])
							}
						} else if math.Abs(cd.HorizonRMSE[k]-errH) > 1e-9 {
							t.Errorf("candidate %d step %d: RMSE %v, want %v", c, h, cd.HorizonRMSE[k], errH)
						}
					}
					if cd.Scores != fewest {
						t.Errorf("candidate %d: %d scores, want %d", c, cd.Scores, fewest)
					}
					wantRMSE := math.Sqrt(mse / float64(len(e.Horizons())))
					if (fewest == 0) != math.IsNaN(cd.RMSE) || (fewest > 0 && math.Abs(cd.RMSE-wantRMSE) > 1e-9) {
						t.Errorf("candidate %d: RMSE %v, want %v (%d scores)", c, cd.RMSE, wantRMSE, fewest)
					}
					if want := windowTotal(fcs[c].Mean, 7); cd.WindowTotal != want {
						t.Errorf("candidate %d: window total %v, want %v", c, cd.WindowTotal, want)
					}
					if len(cd.Quantiles) != 3 || cd.Quantiles[0] != fcs[c].Q[0] || cd.Quantiles[2] != fcs[c].Q[2] {
						t.Errorf("candidate %d: quantiles %v, want %v", c, cd.Quantiles, fcs[c].Q[:3])
					}
					// The next-bucket quantiles are scored at each update
					// that follows the one before it.
					pinScores := max(0, tc.updates-1)
					var loss float64
					for j, q := range DefaultLevels {
						loss += Pinball(q, 2, fcs[c].Q[j])
					}
					if cd.PinballScores != pinScores || (pinScores > 0 && math.Abs(cd.Pinball-loss) > 1e-9) {
						t.Errorf("candidate %d: pinball %v of %d scores, want %v of %d", c, cd.Pinball, cd.PinballScores, loss, pinScores)
					}
				}
			}
		})
	}
}
