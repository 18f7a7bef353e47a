package model_test

import (
	"fmt"

	"github.com/trendstream/trendstream/model"
)

func ExampleNew() {
	f, err := model.New(model.NameMA28, model.Config{Horizon: 3})
	if err != nil {
		panic(err)
	}
	out := model.NewForecast(model.Config{Horizon: 3, Levels: model.DefaultLevels})
	f.Forecast(out, &model.Input{Y: []float64{0, 2, 0, 1, 0, 3, 1}, Period: 7})
	for h := range out.Horizon() {
		fmt.Printf("step %d: mean %.2f, p10 %.1f, p50 %.1f, p90 %.1f\n",
			h+1, out.Mean[h], out.Quantile(h, 0), out.Quantile(h, 1), out.Quantile(h, 2))
	}
	// Output:
	// step 1: mean 1.00, p10 0.0, p50 1.0, p90 2.4
	// step 2: mean 1.00, p10 0.0, p50 1.0, p90 2.4
	// step 3: mean 1.00, p10 0.0, p50 1.0, p90 2.4
}

func ExampleTrend() {
	last7 := []float64{3, 4, 2, 5, 3, 4, 3}
	next7 := []float64{4, 4, 4, 4, 4, 4, 4}
	tr := model.Trend(last7, next7, 5)
	fmt.Printf("%s %+.1f%%\n", tr.Direction, *tr.ChangePct)
	// Output: up +16.7%
}
