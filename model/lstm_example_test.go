package model_test

import (
	"fmt"
	"math"

	"github.com/trendstream/trendstream/model"
)

// The pipeline's loop at each bucket close: train on the series that
// closed the bucket, then forecast them. A checkpoint carries the model
// across restarts.
func ExampleLSTM() {
	cfg := model.Config{Horizon: 7}
	if err := cfg.Validate(); err != nil { // fills in the default levels
		panic(err)
	}
	m, err := model.NewLSTM(model.LearnerConfig{Layers: 1, Hidden: 16, Window: 28}, cfg)
	if err != nil {
		panic(err)
	}
	// Two daily series with a weekly pattern, 60 closed buckets each.
	in := make([]model.Input, 2)
	for i := range in {
		y := make([]float64, 60)
		for t := range y {
			y[t] = math.Round(5 + 3*math.Sin(2*math.Pi*float64(t+i)/7))
		}
		in[i] = model.Input{Y: y, Start: 19000, Period: 7}
	}
	st := m.Learn(in)
	fmt.Printf("examples %d, steps %d, skipped %d\n", st.Examples, st.Steps, st.Skipped)

	dst := []*model.Forecast{model.NewForecast(cfg), model.NewForecast(cfg)}
	m.ForecastBatch(dst, in)
	fmt.Println(m.Version(), dst[0].Horizon(), dst[0].Check() == nil)

	ckpt, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	restored, _ := model.NewLSTM(model.LearnerConfig{Layers: 1, Hidden: 16, Window: 28}, cfg)
	fmt.Println(restored.UnmarshalBinary(ckpt), restored.Version())
	// Output:
	// examples 2, steps 1, skipped 0
	// 1x16/steps=1 7 true
	// <nil> 1x16/steps=1
}
