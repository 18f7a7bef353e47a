package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// step is one expected forecast step: mean, p10, p50, p90.
type step [4]float64

func TestBaselines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fc     func(Config) Forecaster
		y      []float64
		period int
		want   []step
	}{
		{
			name: "naive: last value, bands from first differences",
			fc:   mustNew(NameNaive),
			y:    []float64{1, 3, 2, 5},
			// differences 2, -1, 3: quantiles -0.4, 2, 2.8
			want: []step{{5, 4.6, 7, 7.8}, {5, 4.6, 7, 7.8}, {5, 4.6, 7, 7.8}},
		},
		{
			name: "naive: empty history forecasts zero",
			fc:   mustNew(NameNaive),
			want: []step{{0, 0, 0, 0}},
		},
		{
			name: "seasonal naive repeats the last cycle, bands from seasonal differences",
			fc:   mustNew(NameSeasonalNaive), period: 3,
			y: []float64{1, 3, 2, 5, 0, 4},
			// seasonal differences 4, -3, 2: quantiles -2, 2, 3.6; clamped at 0
			want: []step{{5, 3, 7, 8.6}, {0, 0, 2, 3.6}, {4, 2, 6, 7.6}, {5, 3, 7, 8.6}},
		},
		{
			name: "seasonal naive with less than a cycle is naive",
			fc:   mustNew(NameSeasonalNaive), period: 7,
			y: []float64{2, 4},
			// a single difference of 2 is every quantile
			want: []step{{4, 6, 6, 6}},
		},
		{
			name: "moving average with empirical quantiles",
			fc: func(cfg Config) Forecaster {
				cfg.Validate()
				return &MA{base: base{cfg: cfg}, Window: 4}
			},
			y:    []float64{9, 1, 0, 3, 0},
			want: []step{{1, 0, 0.5, 2.4}, {1, 0, 0.5, 2.4}},
		},
		{
			name: "ma28 uses all history when shorter",
			fc:   mustNew(NameMA28),
			y:    []float64{2, 0, 1},
			want: []step{{1, 0.2, 1, 1.8}},
		},
		{
			name: "ets without a full two cycles is simple exponential smoothing",
			fc:   mustNew(NameETS), period: 7,
			// alpha 0.5 has the least one-step error: level 2, errors 2 and 0
			y:    []float64{1, 3, 2},
			want: []step{{2, 2.2, 3, 3.8}, {2, 2.2, 3, 3.8}},
		},
		{
			name: "ets reproduces an exact seasonal pattern",
			fc:   mustNew(NameETS), period: 2,
			y:    []float64{1, 5, 1, 5, 1, 5},
			want: []step{{1, 1, 1, 1}, {5, 5, 5, 5}, {1, 1, 1, 1}},
		},
		{
			name: "tsb smooths probability and size",
			fc: func(cfg Config) Forecaster {
				cfg.Validate()
				return &TSB{base: base{cfg: cfg}, Alpha: 0.5, Beta: 0.5}
			},
			y: []float64{0, 2, 0, 4},
			// start p = 0.5, z = 3; errors -1.5, 1.25, -1.5625, 3.21875
			want: []step{{2.1328125, 0.5890625, 2.0078125, 4.7609375}},
		},
		{
			name: "tsb on a series that never sold forecasts zero",
			fc:   mustNew(NameTSB),
			y:    []float64{0, 0, 0},
			want: []step{{0, 0, 0, 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Horizon: len(tc.want)}
			f := tc.fc(cfg)
			cfg.Validate()
			dst := NewForecast(cfg)
			f.Forecast(dst, &Input{Y: tc.y, Period: tc.period})
			if err := dst.Check(); err != nil {
				t.Fatal(err)
			}
			for h, w := range tc.want {
				got := step{dst.Mean[h], dst.Quantile(h, 0), dst.Quantile(h, 1), dst.Quantile(h, 2)}
				for i := range got {
					if math.Abs(got[i]-w[i]) > 1e-9 {
						t.Fatalf("step %d = %v, want %v", h, got, w)
					}
				}
			}
		})
	}
}

func mustNew(name string) func(Config) Forecaster {
	return func(cfg Config) Forecaster {
		f, err := New(name, cfg)
		if err != nil {
			panic(err)
		}
		return f
	}
}

// TestBaselinesValid runs every baseline on random intermittent histories of
// every length up to 100 and checks the Forecast invariants.
func TestBaselinesValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cfg := Config{Horizon: 28, Levels: []float64{0.05, 0.1, 0.5, 0.9, 0.95}}
	for _, name := range Baselines {
		f, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, f.Name())
		}
		cfg.Validate()
		dst := NewForecast(cfg)
		for n := range 100 {
			y := make([]float64, n)
			for i := range y {
				if r.Float64() < 0.4 {
					y[i] = float64(r.IntN(20))
				}
			}
			f.Forecast(dst, &Input{Y: y, Period: 7})
			if err := dst.Check(); err != nil {
				t.Fatalf("%s on %v: %v", name, y, err)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Horizon: 7, Levels: []float64{0.5}}, true},
		{Config{Horizon: -1}, false},
		{Config{Levels: []float64{0.5, 0.1}}, false},
		{Config{Levels: []float64{0, 0.5}}, false},
		{Config{Levels: []float64{0.5, 1}}, false},
		{Config{Levels: []float64{math.NaN()}}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	if _, err := New("prophet", Config{}); err == nil {
		t.Error("New accepted an unknown model")
	}
}

func TestForecastCheck(t *testing.T) {
	f := &Forecast{Mean: []float64{1}, Q: []float64{0, 1, 2}, Levels: DefaultLevels}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]*Forecast{
		"crossing":  {Mean: []float64{1}, Q: []float64{0, 2, 1}, Levels: DefaultLevels},
		"negative":  {Mean: []float64{-1}, Q: []float64{0, 1, 2}, Levels: DefaultLevels},
		"nan":       {Mean: []float64{1}, Q: []float64{0, math.NaN(), 2}, Levels: DefaultLevels},
		"inf":       {Mean: []float64{math.Inf(1)}, Q: []float64{0, 1, 2}, Levels: DefaultLevels},
		"misshapen": {Mean: []float64{1}, Q: []float64{0, 1}, Levels: DefaultLevels},
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%s forecast passed Check", name)
		}
	}
}

func TestTrend(t *testing.T) {
	pct := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name         string
		actual, mean []float64
		want         TrendSummary
	}{
		{"up", []float64{9, 1, 1, 1, 1, 1, 1, 1}, []float64{2, 2, 2, 2, 2, 2, 2, 0}, TrendSummary{Up, pct(100)}},
		{"down", []float64{2, 2, 2, 2, 2, 2, 2}, []float64{1, 1, 1, 1, 1, 1, 1}, TrendSummary{Down, pct(-50)}},
		{"flat within band", []float64{10, 10, 10, 10, 10, 10, 10}, []float64{10.2, 10, 10, 10, 10, 10, 10}, TrendSummary{Flat, pct(0.2 / 70 * 100)}},
		{"short forecast", []float64{1, 1, 4}, []float64{2, 2}, TrendSummary{Down, pct(-20)}},
		{"from nothing", []float64{0, 0, 0}, []float64{0, 1, 0}, TrendSummary{Direction: Up}},
		{"nothing either side", []float64{0, 0}, []float64{0, 0}, TrendSummary{Direction: Flat}},
		{"no history", nil, []float64{1}, TrendSummary{Direction: Flat}},
	} {
		got := Trend(tc.actual, tc.mean, 5)
		if got.Direction != tc.want.Direction || (got.ChangePct == nil) != (tc.want.ChangePct == nil) ||
			(got.ChangePct != nil && math.Abs(*got.ChangePct-*tc.want.ChangePct) > 1e-9) {
			t.Errorf("%s: Trend = %v %v, want %v %v", tc.name, got.Direction, deref(got.ChangePct), tc.want.Direction, deref(tc.want.ChangePct))
		}
	}
}

func deref(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func BenchmarkBaselines(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	y := make([]float64, 84)
	for i := range y {
		if r.Float64() < 0.4 {
			y[i] = float64(r.IntN(20))
		}
	}
	cfg := Config{}
	cfg.Validate()
	for _, name := range Baselines {
		b.Run(name, func(b *testing.B) {
			f, _ := New(name, cfg)
			dst := NewForecast(cfg)
			in := &Input{Y: y, Period: 7}
			f.Forecast(dst, in)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				f.Forecast(dst, in)
			}
		})
	}
}
