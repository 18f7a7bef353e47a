package model_test

import (
	"fmt"
	"math"
	"strings"

	"github.com/trendstream/trendstream/model"
)

// Explaining a learner's forecast of a series: prepare on the learner's
// goroutine, integrate anywhere. The groups add up to the change from the
// baseline, up to the integration error in Residual.
func ExampleExplainer() {
	cfg := model.Config{Horizon: 7}
	if err := cfg.Validate(); err != nil { // fills in the default levels
		panic(err)
	}
	m, err := model.NewLSTM(model.LearnerConfig{Layers: 1, Hidden: 16, Window: 28}, cfg)
	if err != nil {
		panic(err)
	}
	y := make([]float64, 60)
	promo := make([]float32, 60)
	for t := range y {
		y[t] = math.Round(5 + 3*math.Sin(2*math.Pi*float64(t)/7))
		if t >= 55 {
			promo[t], y[t] = 1, 2*y[t]
		}
	}
	in := model.Input{Y: y, Promo: promo, Start: 19000, Period: 7}
	m.Learn([]model.Input{in})

	a, err := m.PrepareExplanation(&in)
	if err != nil {
		panic(err)
	}
	ex, err := a.Explain(model.ExplainConfig{Steps: 64})
	if err != nil {
		panic(err)
	}
	sum := ex.Residual
	var names []string
	for g := range model.NumGroups {
		names = append(names, g.String())
		sum += ex.Groups[g]
	}
	fmt.Println(strings.Join(names, " "))
	fmt.Println(ex.Buckets, math.Abs(sum-(ex.Forecast-ex.Baseline)) < 1e-9, math.Abs(ex.Residual) < 1e-3*math.Abs(ex.Forecast-ex.Baseline))
	// Output:
	// recent_level weekly_pattern trend price promotion calendar_events intermittency
	// 7 true true
}
