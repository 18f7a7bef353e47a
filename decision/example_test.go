package decision_test

import (
	"fmt"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
)

// A partition's close: classify each series, rank them per store, plan
// their replenishment.
func Example() {
	trends, _ := decision.NewTrends(decision.TrendConfig{})
	ranking := decision.NewRanking(10)
	rep, _ := decision.NewReplenisher(decision.ReplenishConfig{Method: decision.NegBinom})

	// Five weeks of daily sales: one series steady at 10 a day, one that
	// doubled ten days ago.
	steady, doubled := make([]float64, 35), make([]float64, 35)
	for d := range steady {
		steady[d], doubled[d] = 10, 10
		if d >= 25 {
			doubled[d] = 20
		}
	}
	f := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
	for h := range f.Mean {
		f.Mean[h] = 20
		f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = 14, 20, 26
	}

	ranking.Reset()
	for _, s := range []struct {
		id string
		y  []float64
	}{{"S1/steady", steady}, {"S1/doubled", doubled}} {
		var st decision.TrendState
		tr := trends.Classify(&st, &model.Input{Y: s.y}, 400, f)
		ranking.Add(s.id, tr)
	}
	for _, r := range ranking.Top(nil, "S1", decision.Rising) {
		fmt.Printf("rising: %s, last week %.0f against %.0f\n", r.Series, r.Trend.Last, r.Trend.Reference)
	}

	var st decision.ReplenishState
	var plan decision.Plan
	stock := &decision.Stock{OnHand: 150, OnOrder: 100}
	if err := rep.Update(&st, 1000, doubled, f, decision.Policy{PackSize: 12}, stock, &plan); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("over %d days: mean %.0f, order up to %.0f (safety stock %.0f), reorder point %.0f, order %.0f\n",
		plan.Cycle, plan.Mean, plan.OrderUpTo, plan.SafetyStock, plan.ReorderPoint, plan.Order)
	// Output:
	// rising: S1/doubled, last week 140 against 70
	// over 14 days: mean 280, order up to 323 (safety stock 43), reorder point 166, order 84
}
