package decision_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
)

// flatForecast returns a forecast of mean m every step with the band p10,
// p50, p90 given.
func flatForecast(m, p10, p50, p90 float64) *model.Forecast {
	f := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
	for h := range f.Mean {
		f.Mean[h] = m
		f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = p10, p50, p90
	}
	return f
}

func newReplenisher(t testing.TB, cfg decision.ReplenishConfig) *decision.Replenisher {
	t.Helper()
	r, err := decision.NewReplenisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPlanMethods checks Independent against its closed form, and the
// policy arithmetic, on a flat forecast: mean 3 a step and a band whose
// standard deviation is 2 a step. (TestNegBinomPlan checks NegBinom.)
func TestPlanMethods(t *testing.T) {
	const sd = 2.0
	f := flatForecast(3, 3-1.2815515655446004*sd, 3, 3+1.2815515655446004*sd)
	y := make([]float64, 30)
	for _, tc := range []struct {
		method      decision.Method
		policy      decision.Policy
		stock       *decision.Stock
		orderUpTo   float64
		reorder     float64
		order       float64
		hasOrder    bool
		description string
	}{
		{method: decision.Independent, policy: decision.Policy{},
			orderUpTo: 42 + 1.6448536269514722*sd*math.Sqrt(14), reorder: 21 + 1.6448536269514722*sd*math.Sqrt(7),
			description: "sigma times the root of the steps"},
		{method: decision.Independent, policy: decision.Policy{LeadTime: 3, ReviewPeriod: 2, ServiceLevel: 0.99},
			stock: &decision.Stock{OnHand: 4, OnOrder: 2}, orderUpTo: 15 + 2.3263478740408408*sd*math.Sqrt(5),
			reorder: 9 + 2.3263478740408408*sd*math.Sqrt(3), order: 20, hasOrder: true, description: "a policy of its own, order 19.4 rounded up"},
		{method: decision.Independent, policy: decision.Policy{PackSize: 6}, stock: &decision.Stock{OnHand: 10, OnOrder: 0.5},
			orderUpTo: 42 + 1.6448536269514722*sd*math.Sqrt(14), reorder: 21 + 1.6448536269514722*sd*math.Sqrt(7),
			order: 48, hasOrder: true, description: "order 43.8 rounded up to packs of 6"},
		{method: decision.Independent, policy: decision.Policy{}, stock: &decision.Stock{OnHand: 100},
			orderUpTo: 42 + 1.6448536269514722*sd*math.Sqrt(14), reorder: 21 + 1.6448536269514722*sd*math.Sqrt(7),
			order: 0, hasOrder: true, description: "enough stock"},
	} {
		r := newReplenisher(t, decision.ReplenishConfig{Method: tc.method})
		var st decision.ReplenishState
		var p decision.Plan
		if err := r.Update(&st, 100, y, f, tc.policy, tc.stock, &p); err != nil {
			t.Fatal(err)
		}
		pol := tc.policy.WithDefaults()
		if math.Abs(p.OrderUpTo-tc.orderUpTo) > 1e-9 || math.Abs(p.ReorderPoint-tc.reorder) > 1e-9 ||
			p.Order != tc.order || p.HasOrder != tc.hasOrder || p.Calibrated ||
			p.Cycle != pol.LeadTime+pol.ReviewPeriod || p.Mean != 3*float64(p.Cycle) || p.LeadMean != 3*float64(pol.LeadTime) ||
			math.Abs(p.SafetyStock-(p.OrderUpTo-p.Mean)) > 1e-12 {
			t.Errorf("%v, %s: plan %+v, want order-up-to %v, reorder point %v, order %v (%v)", tc.method, tc.description, p, tc.orderUpTo, tc.reorder, tc.order, tc.hasOrder)
		}
		for i := 1; i < len(p.Quantiles); i++ {
			if p.Quantiles[i] < p.Quantiles[i-1] || p.Quantiles[0] < 0 {
				t.Errorf("%v: quantiles %v", tc.method, p.Quantiles)
			}
		}
	}
}

func TestUpdateErrors(t *testing.T) {
	r := newReplenisher(t, decision.ReplenishConfig{})
	f := flatForecast(1, 0, 1, 2)
	short := model.NewForecast(model.Config{Horizon: 10, Levels: model.DefaultLevels})
	noBand := model.NewForecast(model.Config{Horizon: 28, Levels: []float64{0.5}})
	for _, tc := range []struct {
		policy decision.Policy
		f      *model.Forecast
		stock  *decision.Stock
		field  string
	}{
		{decision.Policy{LeadTime: -1}, f, nil, "LeadTime"},
		{decision.Policy{ReviewPeriod: 25}, f, nil, "ReviewPeriod"},
		{decision.Policy{}, short, nil, "horizon"},
		{decision.Policy{ServiceLevel: 1}, f, nil, "ServiceLevel"},
		{decision.Policy{PackSize: -2}, f, nil, "PackSize"},
		{decision.Policy{}, noBand, nil, "0.9"},
		{decision.Policy{}, f, &decision.Stock{OnOrder: -1}, "on order"},
		{decision.Policy{}, f, &decision.Stock{OnHand: math.NaN()}, "on hand"},
	} {
		var st decision.ReplenishState
		var p decision.Plan
		if err := r.Update(&st, 1, nil, tc.f, tc.policy, tc.stock, &p); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: error %v, want one naming %s", tc.policy, err, tc.field)
		}
	}
	for _, cfg := range []decision.ReplenishConfig{{Method: 7}, {Levels: []float64{0.9, 0.5}}, {HalfLife: -1}, {Memory: -1}} {
		if _, err := decision.NewReplenisher(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := decision.ParseMethod("conformal"); err != nil {
		t.Error(err)
	}
	if _, err := decision.ParseMethod("magic"); err == nil {
		t.Error("unknown method accepted")
	}
}

// simulation is a partition of series whose demand is Poisson around a
// level that drifts (a log-AR(1) process), so the demand of neighbouring
// days is correlated, while the forecaster knows only each series' base
// rate and gives it a Poisson band: a forecaster that misses the
// correlation, as the classical ones do.
type simulation struct {
	r     *rand.Rand
	base  []float64
	logLv []float64
	y     [][]float64
}

func newSimulation(seed uint64, series int) *simulation {
	s := &simulation{r: rand.New(rand.NewPCG(seed, 1))}
	for range series {
		s.base = append(s.base, 0.3+20*s.r.Float64()*s.r.Float64())
		s.logLv = append(s.logLv, 0)
		s.y = append(s.y, nil)
	}
	return s
}

func (s *simulation) day() {
	for i := range s.base {
		s.logLv[i] = 0.95*s.logLv[i] + 0.1*s.r.NormFloat64()
		mean := s.base[i] * math.Exp(s.logLv[i])
		l, k, p := math.Exp(-mean), 0, 1.0
		for {
			p *= s.r.Float64()
			if p <= l {
				break
			}
			k++
		}
		s.y[i] = append(s.y[i], float64(k))
	}
}

// TestConformalCalibrates runs the simulation for 500 days and measures
// the cycle service level of plans made over its last 250: Conformal must
// reach its targets within two points; the model-based methods, which
// trust the forecaster's independent Poisson band, must fall short.
func TestConformalCalibrates(t *testing.T) {
	const series, days, from = 300, 500, 250
	targets := []float64{0.9, 0.95}
	methods := []decision.Method{decision.Conformal, decision.NegBinom, decision.Independent}
	sim := newSimulation(11, series)
	reps := make([]*decision.Replenisher, len(methods))
	for i, m := range methods {
		reps[i] = newReplenisher(t, decision.ReplenishConfig{Method: m, Levels: targets})
	}
	states := make([][]decision.ReplenishState, len(methods))
	for i := range states {
		states[i] = make([]decision.ReplenishState, series)
	}
	type plan struct {
		day, series int
		upTo        []float64
	}
	var pending []plan
	covered := make([][]int, len(methods))
	for i := range covered {
		covered[i] = make([]int, len(targets))
	}
	scored := 0
	var p decision.Plan
	forecasts := make([]*model.Forecast, series)
	for i, b := range sim.base {
		// The Poisson band of the base rate.
		sd := math.Sqrt(b)
		forecasts[i] = flatForecast(b, max(b-1.2815515655446004*sd, 0), b, b+1.2815515655446004*sd)
	}
	for d := range days {
		sim.day()
		for i := range series {
			for m, r := range reps {
				if err := r.Update(&states[m][i], int64(d), sim.y[i], forecasts[i], decision.Policy{}, nil, &p); err != nil {
					t.Fatal(err)
				}
				if d >= from && d+14 < days {
					if m == 0 {
						pending = append(pending, plan{day: d, series: i, upTo: make([]float64, len(methods)*len(targets))})
					}
					copy(pending[len(pending)-1].upTo[m*len(targets):], p.Quantiles)
				}
			}
		}
	}
	for _, pl := range pending {
		var demand float64
		for _, v := range sim.y[pl.series][pl.day+1 : pl.day+15] {
			demand += v
		}
		scored++
		for m := range methods {
			for j := range targets {
				if demand <= pl.upTo[m*len(targets)+j] {
					covered[m][j]++
				}
			}
		}
	}
	for m, method := range methods {
		for j, target := range targets {
			csl := float64(covered[m][j]) / float64(scored)
			t.Logf("%v at %.2f: cycle service level %.3f", method, target, csl)
			switch {
			case method == decision.Conformal && math.Abs(csl-target) > 0.02:
				t.Errorf("%v at %.2f: cycle service level %.3f, want within 0.02", method, target, csl)
			case method != decision.Conformal && csl > target-0.05:
				t.Errorf("%v at %.2f: cycle service level %.3f; a band without correlation should fall 0.05 short", method, target, csl)
			}
		}
	}
}
