package decision

import (
	"math"
	"slices"
	"testing"

	"github.com/trendstream/trendstream/model"
)

// nbBrute returns the q-quantile of the negative binomial (Poisson when
// phi is 0) by summing probabilities computed from log-gamma functions, an
// implementation independent of nbQuantile's recurrence.
func nbBrute(mean, phi, q float64) float64 {
	var cdf float64
	for k := 0.0; ; k++ {
		var logp float64
		if phi == 0 {
			lk, _ := math.Lgamma(k + 1)
			logp = k*math.Log(mean) - mean - lk
		} else {
			r := 1 / phi
			a, _ := math.Lgamma(k + r)
			b, _ := math.Lgamma(r)
			c, _ := math.Lgamma(k + 1)
			logp = a - b - c + r*math.Log(r/(r+mean)) + k*math.Log(mean/(r+mean))
		}
		cdf += math.Exp(logp)
		if cdf >= q {
			return k
		}
	}
}

func TestNBQuantile(t *testing.T) {
	for _, tc := range []struct {
		name         string
		mean, phi, q float64
		relTol       float64 // 0: exact
	}{
		{"poisson small", 0.3, 0, 0.95, 0},
		{"poisson median", 2.5, 0, 0.5, 0},
		{"poisson tail", 2.5, 0, 0.99, 0},
		{"poisson large", 300, 0, 0.95, 0},
		{"negbinom", 7, 0.4, 0.9, 0},
		{"negbinom tail", 40, 0.05, 0.99, 0},
		{"negbinom overdispersed", 30, 0.5, 0.99, 0},
		{"gamma path, small and overdispersed", 120, 2, 0.99, 0.01},
		{"negbinom low quantile", 10, 0.5, 0.1, 0},
		{"gamma path, poisson", 2000, 0, 0.95, 0.002},
		{"gamma path, negbinom", 1e5, 0.01, 0.99, 0.005},
		{"gamma path, overdispersed", 3000, 1.5, 0.9, 0.01},
	} {
		got, want := nbQuantile(tc.mean, tc.phi, tc.q), nbBrute(tc.mean, tc.phi, tc.q)
		if tc.relTol == 0 && got != want || math.Abs(got-want) > tc.relTol*want {
			t.Errorf("%s: nbQuantile(%v, %v, %v) = %v, brute force %v", tc.name, tc.mean, tc.phi, tc.q, got, want)
		}
	}
	if got := nbQuantile(0, 0.3, 0.99); got != 0 {
		t.Errorf("zero mean: %v", got)
	}
}

func TestNormalQuantile(t *testing.T) {
	for q, want := range map[float64]float64{0.5: 0, 0.95: 1.6448536269514722, 0.99: 2.3263478740408408, 0.1: -1.2815515655446004} {
		if got := normalQuantile(q); math.Abs(got-want) > 1e-12 {
			t.Errorf("normalQuantile(%v) = %v, want %v", q, got, want)
		}
	}
}

// TestNegBinomPlan checks that NegBinom, and Conformal before it has
// calibration, plan with the negative binomial of the totals: a flat
// forecast of mean 3 a step whose band has a standard deviation of 2 a
// step gives phi = (4 - 3)/9, the dispersion of every step and of the
// totals under a level shared by all steps.
func TestNegBinomPlan(t *testing.T) {
	f := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
	for h := range f.Mean {
		f.Mean[h] = 3
		f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = 3-2*1.2815515655446004, 3, 3+2*1.2815515655446004
	}
	for _, m := range []Method{NegBinom, Conformal} {
		r, err := NewReplenisher(ReplenishConfig{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		var st ReplenishState
		var p Plan
		if err := r.Update(&st, 5, nil, f, Policy{ServiceLevel: 0.9}, nil, &p); err != nil {
			t.Fatal(err)
		}
		want := []float64{nbBrute(42, 1.0/9, 0.5), nbBrute(42, 1.0/9, 0.9), nbBrute(42, 1.0/9, 0.95), nbBrute(42, 1.0/9, 0.99)}
		if !slices.Equal(p.Quantiles, want) || p.OrderUpTo != want[1] || p.ReorderPoint != nbBrute(21, 1.0/9, 0.9) || p.Calibrated {
			t.Errorf("%v: plan %+v, want quantiles %v and reorder point %v", m, p, want, nbBrute(21, 1.0/9, 0.9))
		}
	}
}
