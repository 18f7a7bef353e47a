package decision_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
)

// BenchmarkClassify measures a series' trend at a close, by the history
// passed (the comparison needs 35 buckets; the pipeline holds 84).
func BenchmarkClassify(b *testing.B) {
	tr, _ := decision.NewTrends(decision.TrendConfig{})
	for _, n := range []int{35, 84} {
		b.Run(fmt.Sprintf("history=%d", n), func(b *testing.B) {
			s := poisson(rand.New(rand.NewPCG(1, 2)), n, func(int) float64 { return 10 })
			in := &model.Input{Y: s.y, Price: s.price, Promo: s.promo}
			f := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
			for h := range f.Mean {
				f.Mean[h] = 10
			}
			var st decision.TrendState
			b.ReportAllocs()
			for b.Loop() {
				tr.Classify(&st, in, 100, f)
			}
		})
	}
}

// BenchmarkRankingAdd measures ranking one series, of 10,000 at a close.
func BenchmarkRankingAdd(b *testing.B) {
	all := randomRanked(rand.New(rand.NewPCG(1, 2)), 10000)
	rk := decision.NewRanking(10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(all) {
			rk.Reset()
			i = 0
		}
		rk.Add(all[i].Series, all[i].Trend)
		i++
	}
}

// BenchmarkUpdate measures a series' replenishment plan at a close, for
// each method, with a calibrated partition and a small and a large
// expected demand.
func BenchmarkUpdate(b *testing.B) {
	for _, method := range []decision.Method{decision.Conformal, decision.NegBinom, decision.Independent} {
		for _, mean := range []float64{0.5, 40} {
			b.Run(fmt.Sprintf("%v/mean=%g", method, mean), func(b *testing.B) {
				r := newReplenisher(b, decision.ReplenishConfig{Method: method, MinWeight: 10})
				f := flatForecast(mean, 0.5*mean, mean, 2*mean)
				y := make([]float64, 84)
				for i := range y {
					y[i] = float64(rand.N(int(2*mean) + 1))
				}
				states := make([]decision.ReplenishState, 100)
				var p decision.Plan
				stock := &decision.Stock{OnHand: mean}
				// Calibrate on 30 closes of 100 series.
				for bucket := range int64(30) {
					for i := range states {
						if err := r.Update(&states[i], bucket, y, f, decision.Policy{}, stock, &p); err != nil {
							b.Fatal(err)
						}
					}
				}
				bucket, i := int64(30), 0
				b.ReportAllocs()
				for b.Loop() {
					if err := r.Update(&states[i], bucket, y, f, decision.Policy{}, stock, &p); err != nil {
						b.Fatal(err)
					}
					if i++; i == len(states) {
						i, bucket = 0, bucket+1
					}
				}
			})
		}
	}
}
