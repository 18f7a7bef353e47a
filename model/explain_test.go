package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// explainCase returns a learner trained for a few closes on lstmTestSeries
// (weights away from their initial values) and the windows to explain.
func explainCase(t testing.TB, name string, cfg LearnerConfig, length int) (Learner, []Input) {
	t.Helper()
	m := newLearner(t, name, cfg, lstmSmallCfg)
	in := lstmTestSeries(6, length, 21)
	for end := length - 10; end <= length; end++ {
		m.Learn(lstmCut(in, end))
	}
	return m, in
}

// explainF returns F of one window of features x and its gradient.
func explainF(a *Attribution, x []float64, buckets int) (float64, []float64) {
	dx := make([]float64, len(x))
	f := a.gradients(x, 1, buckets, make([]float64, a.outputs()), dx, nil)
	return f[0], dx
}

// TestExplainInputGradient checks the gradient of the explained output
// with respect to every input feature against central finite
// differences of the float64 network, for every learner, with and
// without left padding.
func TestExplainInputGradient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		learner string
		layers  int
		keep    int // buckets of the window explained; fewer than Window pads
	}{
		{"lstm/1 layer", NameLSTM, 1, 40},
		{"lstm/2 layers/padded", NameLSTM, 2, 6},
		{"gru/2 layers", NameGRU, 2, 40},
		{"gru/1 layer/padded", NameGRU, 1, 6},
		{"transformer/2 blocks", NameTransformer, 2, 40},
		{"transformer/1 block/padded", NameTransformer, 1, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := learnerSmall
			cfg.Layers = tc.layers
			m, in := explainCase(t, tc.learner, cfg, 40)
			a, err := m.(Explainer).PrepareExplanation(&lstmCut(in, tc.keep)[2])
			if err != nil {
				t.Fatal(err)
			}
			if (tc.keep < cfg.Window) != (a.pad > 0) {
				t.Fatalf("window not padded")
			}
			x := append([]float64(nil), a.x...)
			_, g := explainF(a, x, 3)
			const eps = 1e-6
			var worst, gmax float64
			for i := range x {
				gmax = max(gmax, math.Abs(g[i]))
			}
			for i := range x {
				if i/a.features < a.pad {
					if g[i] != 0 {
						t.Errorf("padded step %d feature %d has gradient %g", i/a.features, i%a.features, g[i])
					}
					continue
				}
				v := x[i]
				x[i] = v + eps
				fp, _ := explainF(a, x, 3)
				x[i] = v - eps
				fm, _ := explainF(a, x, 3)
				x[i] = v
				fd := (fp - fm) / (2 * eps)
				worst = max(worst, math.Abs(fd-g[i])/(gmax+1e-12))
			}
			if gmax == 0 {
				t.Fatal("all input gradients are zero")
			}
			if worst > 1e-6 {
				t.Errorf("largest gradient error %.3g relative to the largest gradient %.3g, want < 1e-6", worst, gmax)
			}
		})
	}
}

// TestExplainCompleteness checks that the attributions sum to the
// difference between the forecast and the baseline's, up to the midpoint
// rule's error, which must shrink about fourfold for each doubling of the
// steps, and that the forecast explained is the learner's own.
func TestExplainCompleteness(t *testing.T) {
	for _, name := range Learners {
		t.Run(name, func(t *testing.T) {
			cfg := learnerSmall
			cfg.Refresh, cfg.Window = 1, 21 // three weeks: a seasonal part
			m, in := explainCase(t, name, cfg, 40)
			fc := lstmForecasts(lstmSmallCfg, len(in))
			m.ForecastBatch(fc, in)
			for i := range in {
				a, err := m.(Explainer).PrepareExplanation(&in[i])
				if err != nil {
					t.Fatal(err)
				}
				var prev float64
				for _, steps := range []int{4, 16, 64} {
					ex, err := a.Explain(ExplainConfig{Steps: steps})
					if err != nil {
						t.Fatal(err)
					}
					var want float64 // the default Buckets: the whole horizon of lstmSmallCfg, 4
					for _, v := range fc[i].Mean {
						want += v / float64(len(fc[i].Mean))
					}
					if d := math.Abs(ex.Forecast - want); d > 1e-4*(1+want) {
						t.Errorf("series %d: explained forecast %.6f, the learner's %.6f", i, ex.Forecast, want)
					}
					diff := ex.Forecast - ex.Baseline
					res := math.Abs(ex.Residual)
					if steps == 64 && res > 1e-3*math.Abs(diff)+1e-9 {
						t.Errorf("series %d, %d steps: residual %.3g of a change %.3g", i, steps, ex.Residual, diff)
					}
					if steps > 4 && res > prev/8+1e-12 {
						t.Errorf("series %d: residual %.3g at %d steps, %.3g at a quarter of them: want it to shrink as 1/steps²", i, res, steps, prev)
					}
					prev = res
				}
			}
		})
	}
}

// TestExplainQuantityParts checks the split of the scaled quantities'
// change into level, trend and seasonal parts: they add up to it exactly,
// and a pure weekly pattern, a pure trend and a pure level shift each land
// in their own part.
func TestExplainQuantityParts(t *testing.T) {
	const L, P = 28, 7
	week := []float64{0, 2, 0, -1, 3, -2, -2}
	for _, tc := range []struct {
		name string
		pad  int
		y    func(t int) float64 // deviation at step t
		want int                 // index in quantityParts of the only non-zero part, -1 for any
	}{
		{"weekly", 0, func(t int) float64 { return week[(t+3)%P] }, 2},
		{"trend", 0, func(t int) float64 { return 0.5 * float64(t) }, 1},
		{"trend/padded", 5, func(t int) float64 { return 0.5 * float64(t) }, 1},
		{"level", 0, func(t int) float64 { return float64(t/27) * 7 }, -1},
		{"mixed/padded", 9, func(t int) float64 { return 0.1*float64(t) + week[(t+3)%P] + float64(t%5) }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const nf = baseFeatures
			a := &Attribution{window: L, features: nf, pad: tc.pad, x: make([]float64, L*nf), b: make([]float64, L*nf)}
			for s := tc.pad; s < L; s++ {
				a.x[s*nf], a.x[s*nf+1] = 10+tc.y(s), 1
			}
			a.baseline(3, P) // step 0 is bucket 3: the same phase as week's
			for s := range L {
				sum := a.parts[0][s] + a.parts[1][s] + a.parts[2][s]
				if d := a.x[s*nf] - a.b[s*nf]; math.Abs(sum-d) > 1e-12 {
					t.Errorf("step %d: parts sum to %g, change %g", s, sum, d)
				}
				if s < tc.pad && sum != 0 {
					t.Errorf("padded step %d has parts", s)
				}
			}
			if tc.want < 0 {
				return
			}
			for p := range quantityParts {
				var norm float64
				for _, v := range a.parts[p] {
					norm += v * v
				}
				if (p == tc.want) != (norm > 1e-18) {
					t.Errorf("%s part has squared norm %g", quantityParts[p], norm)
				}
			}
		})
	}
}

// dominanceCase is synthetic demand driven by one input only.
type dominanceCase struct {
	name    string
	group   Group
	buckets int
	// series returns series i's quantities and promotion shares.
	series func(r *rand.Rand, i, length int) ([]float64, []float32)
	// explain reports whether to explain series i's window ending at
	// bucket end (exclusive).
	explain func(i int, promo []float32, end int) bool
}

// dominanceCases: sales driven only by the day of the week, with a next
// bucket that depends on it, and only by promotions, which run for ten
// days, so that a window ending three days into one forecasts a week of
// it.
var dominanceCases = []dominanceCase{
	{
		name: "weekly", group: GroupWeekly, buckets: 1,
		series: func(r *rand.Rand, i, length int) ([]float64, []float32) {
			level := 4 + 8*r.Float64()
			week := []float64{0.4, 0.6, 0.8, 1, 1.3, 1.9, 1}
			y := make([]float64, length)
			for t := range y {
				y[t] = float64(lstmPoisson(r, level*week[(t+i)%7]))
			}
			return y, make([]float32, length)
		},
		explain: func(i int, _ []float32, end int) bool { return end%4 == 0 && i%4 == 0 },
	},
	{
		name: "promotion", group: GroupPromotion, buckets: 7,
		series: func(r *rand.Rand, i, length int) ([]float64, []float32) {
			level := 1 + 2*r.Float64()
			y, promo := make([]float64, length), make([]float32, length)
			next := r.IntN(30)
			for t := range y {
				if t >= next {
					if t < next+10 {
						promo[t] = 1
					} else {
						next = t + 10 + r.IntN(30)
					}
				}
				y[t] = float64(lstmPoisson(r, level*(1+2*float64(promo[t]))))
			}
			return y, promo
		},
		explain: func(_ int, promo []float32, end int) bool {
			return end >= 3 && promo[end-1] == 1 && promo[end-2] == 1 && promo[end-3] == 0
		},
	},
}

// TestExplainDominance trains an LSTM on synthetic demand that one input
// alone drives and checks that the explanations give that input's group
// most of the attribution: over the windows explained, its attributions'
// absolute sum must be the largest of any group's and at least half of
// all groups' together.
func TestExplainDominance(t *testing.T) {
	const n, length, H = 40, 300, 7
	for _, tc := range dominanceCases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			ins := make([]Input, n)
			for i := range ins {
				y, promo := tc.series(r, i, length)
				price := make([]float32, length)
				for j := range price {
					price[j] = 3
				}
				ins[i] = Input{Y: y, Promo: promo, Price: price, Period: 7, Start: 0}
			}
			m := newLearner(t, NameLSTM, LearnerConfig{Layers: 1, Hidden: 16, Window: 28, Refresh: 1}, Config{Horizon: H})
			cut := make([]Input, n)
			var abs [NumGroups]float64
			var explained int
			for end := H + 1; end <= length; end++ {
				for i := range ins {
					cut[i] = ins[i]
					cut[i].Y, cut[i].Promo, cut[i].Price = ins[i].Y[:end], ins[i].Promo[:end], ins[i].Price[:end]
				}
				m.Learn(cut)
				if end < length-60 {
					continue
				}
				for i := range cut {
					if !tc.explain(i, cut[i].Promo, end) {
						continue
					}
					a, err := m.(Explainer).PrepareExplanation(&cut[i])
					if err != nil {
						t.Fatal(err)
					}
					ex, err := a.Explain(ExplainConfig{Buckets: tc.buckets})
					if err != nil {
						t.Fatal(err)
					}
					for g, v := range ex.Groups {
						abs[g] += math.Abs(v)
					}
					explained++
				}
			}
			var total float64
			for _, v := range abs {
				total += v
			}
			if explained < 10 {
				t.Fatalf("%d windows explained, want at least 10", explained)
			}
			for g, v := range abs {
				t.Logf("%-16s %6.1f%%", Group(g), 100*v/total)
				if Group(g) != tc.group && v >= abs[tc.group] {
					t.Errorf("%s has more attribution than %s", Group(g), tc.group)
				}
			}
			if share := abs[tc.group] / total; share < 0.5 {
				t.Errorf("%s has %.1f%% of the attribution over %d windows, want at least 50%%", tc.group, 100*share, explained)
			}
		})
	}
}

// BenchmarkExplain measures one explanation of one series with the
// default learner shape (2x32, window 56, horizon 28, 3 levels) and
// integration steps: preparing it (on the learner's goroutine) and
// integrating.
func BenchmarkExplain(b *testing.B) {
	for _, name := range Learners {
		b.Run(name+"/2x32/L=56/steps=32", func(b *testing.B) {
			m := newLearner(b, name, DefaultLearnerConfig(), Config{Horizon: 28, Levels: []float64{0.1, 0.5, 0.9}})
			in := lstmTestSeries(1, 120, 3)
			b.ReportAllocs()
			for b.Loop() {
				a, err := m.(Explainer).PrepareExplanation(&in[0])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Explain(ExplainConfig{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEnsembleStanding checks that Standing reports, after every Update,
// the weights and quantile candidate that Update published, and the
// candidates' errors: candidates forecasting 2, 2.5 and 4 for a series
// selling 2 have errors 0, 0.5 and 2 once scored.
func TestEnsembleStanding(t *testing.T) {
	e, err := NewEnsemble(EnsembleConfig{Candidates: 3, Fallback: 2, MinScores: 3, Power: 16, Horizons: []int{1, 3}})
	if err != nil {
		t.Fatal(err)
	}
	st := e.NewState()
	fcs := []*Forecast{bandForecast(2, 0, 2, 6, 4), bandForecast(2.5, 1.5, 2, 2.5, 4), bandForecast(4, 3, 4, 5, 4)}
	dst := NewForecast(Config{Horizon: 4, Levels: DefaultLevels})
	scratch := make([]float64, 7)
	var recent []float64
	for b := int64(100); b < 120; b++ {
		recent = append(recent, 2)
		elig := []bool{b%5 != 0, true, true}
		mix := e.Update(st, b, recent, fcs, elig, dst, scratch)
		s := e.Standing(st, elig)
		if !slices.Equal(s.Weights, mix.Weights) || s.Quantiles != mix.Quantiles {
			t.Fatalf("bucket %d: standing %v (quantiles %d), update's mix %v (quantiles %d)", b, s.Weights, s.Quantiles, mix.Weights, mix.Quantiles)
		}
		if b < 103 {
			if !math.IsNaN(s.Errors[0]) {
				t.Errorf("bucket %d: error %g before every horizon is scored", b, s.Errors[0])
			}
			continue
		}
		for c, want := range []float64{0, 0.5, 2} {
			if math.Abs(s.Errors[c]-want) > 1e-12 {
				t.Errorf("bucket %d: candidate %d's error %g, want %g", b, c, s.Errors[c], want)
			}
		}
	}
}
