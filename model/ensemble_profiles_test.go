package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// profile generates one synthetic daily series of n buckets with its
// promotion shares.
type profile struct {
	name string
	gen  func(r *rand.Rand, n int) (y []float64, promo []float32)
}

// poisson draws a Poisson count of mean lambda (lambda small, by
// inversion; large, by a normal approximation).
func poisson(r *rand.Rand, lambda float64) float64 {
	if lambda > 30 {
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64()))
	}
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

var weekly = [7]float64{0.8, 0.85, 0.9, 1, 1.15, 1.4, 0.9}

var ensembleProfiles = []profile{
	{"intermittent", func(r *rand.Rand, n int) ([]float64, []float32) {
		y := make([]float64, n)
		rate := 0.1 + 0.3*r.Float64()
		size := 1 + 3*r.Float64()
		for t := range y {
			if r.Float64() < rate {
				y[t] = 1 + poisson(r, size)
			}
		}
		return y, nil
	}},
	{"smooth-seasonal", func(r *rand.Rand, n int) ([]float64, []float32) {
		y := make([]float64, n)
		level := 50 + 150*r.Float64()
		for t := range y {
			y[t] = poisson(r, level*weekly[t%7])
		}
		return y, nil
	}},
	{"trending", func(r *rand.Rand, n int) ([]float64, []float32) {
		y := make([]float64, n)
		level, slope := 20+20*r.Float64(), 0.1+0.2*r.Float64()
		for t := range y {
			y[t] = poisson(r, level+slope*float64(t))
		}
		return y, nil
	}},
	{"promotion-driven", func(r *rand.Rand, n int) ([]float64, []float32) {
		y, promo := make([]float64, n), make([]float32, n)
		level := 10 + 30*r.Float64()
		for t := 0; t < n; {
			run := 14 + r.IntN(21)
			on := r.Float64() < 0.3
			for ; run > 0 && t < n; run, t = run-1, t+1 {
				lift := 1.0
				if on {
					promo[t], lift = 1, 2.5
				}
				y[t] = poisson(r, level*lift*weekly[t%7])
			}
		}
		return y, promo
	}},
}

// ensembleScore replays nSeries series of a profile through the
// candidates and an Ensemble of them, forecasting at every bucket from
// warm on, and returns each candidate's score and then the ensemble's: the
// mean over series of the root mean squared error over every origin and
// step whose actual is known, scaled by the series' root mean squared
// first difference (RMSSE, as the backtest pools it).
func ensembleScore(t testing.TB, p profile, names []string, ecfg EnsembleConfig, seed uint64) []float64 {
	const nSeries, n, warm, hist = 12, 360, 28, 112
	cfg := Config{Horizon: 28}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	fs := make([]Forecaster, len(names))
	fcs := make([]*Forecast, len(names))
	for i, name := range names {
		f, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fs[i], fcs[i] = f, NewForecast(cfg)
	}
	ecfg.Candidates = len(names)
	e, err := NewEnsemble(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]bool, len(names))
	for i := range all {
		all[i] = true
	}
	dst := NewForecast(cfg)
	scratch := make([]float64, 2*len(names)+1)
	r := rand.New(rand.NewPCG(seed, 7))
	score := make([]float64, len(names)+1)
	sse := make([]float64, len(names)+1)
	for range nSeries {
		y, promo := p.gen(r, n)
		clear(sse)
		var cnt, d2 float64
		for t := 1; t < n; t++ {
			d2 += (y[t] - y[t-1]) * (y[t] - y[t-1])
		}
		scale := math.Sqrt(d2/float64(n-1)) + 1e-9
		st := e.NewState()
		for o := 0; o < n; o++ {
			lo := max(0, o+1-hist)
			in := &Input{Y: y[lo : o+1], Start: int64(lo), Period: 7}
			if promo != nil {
				in.Promo = promo[lo : o+1]
			}
			for i, f := range fs {
				f.Forecast(fcs[i], in)
			}
			e.Update(st, int64(o), y[max(0, o-6):o+1], fcs, all, dst, scratch)
			if o < warm {
				continue
			}
			for h := 1; h <= cfg.Horizon && o+h < n; h++ {
				a := y[o+h]
				for i, f := range fcs {
					sse[i] += (a - f.Mean[h-1]) * (a - f.Mean[h-1])
				}
				sse[len(names)] += (a - dst.Mean[h-1]) * (a - dst.Mean[h-1])
				cnt++
			}
		}
		for i := range score {
			score[i] += math.Sqrt(sse[i]/cnt) / scale / nSeries
		}
	}
	return score
}

// TestEnsembleProfiles checks on synthetic profiles of the four kinds of
// demand trendstream meets that the ensemble of the classical forecasters
// is never more than 2% worse than the best of them, whichever it is.
func TestEnsembleProfiles(t *testing.T) {
	names := []string{NameETS, NameTSB, NameMA28, NameSeasonalNaive, NameNaive}
	for _, p := range ensembleProfiles {
		t.Run(p.name, func(t *testing.T) {
			s := ensembleScore(t, p, names, EnsembleConfig{}, 1)
			best := 0
			for i := range names {
				if s[i] < s[best] {
					best = i
				}
			}
			auto := s[len(names)]
			t.Logf("auto %.4f, best %s %.4f, all %v", auto, names[best], s[best], s)
			if auto > 1.02*s[best] {
				t.Errorf("auto %.4f is more than 2%% worse than the best candidate %s %.4f", auto, names[best], s[best])
			}
		})
	}
}
