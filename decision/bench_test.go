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
