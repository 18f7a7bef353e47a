package decision_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
)

// daily is a series of daily closed buckets to classify.
type daily struct {
	y            []float64
	price, promo []float32
}

// poisson draws n days of Poisson demand with mean level(d) on day d.
func poisson(r *rand.Rand, n int, level func(d int) float64) daily {
	s := daily{y: make([]float64, n), price: make([]float32, n), promo: make([]float32, n)}
	for d := range n {
		l, k, p := math.Exp(-level(d)), 0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				break
			}
			k++
		}
		s.y[d], s.price[d] = float64(k), 2
	}
	return s
}

// classify replays a series close by close from day 35 on, as a partition
// would, with a forecast of the mean of the last 7 days at every close but
// the last, where the next window's forecast total is next (NaN: the same
// mean), and returns the trend at the last close.
func classify(t *testing.T, tr *decision.Trends, s daily, first int, next float64) decision.Trend {
	t.Helper()
	f := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
	var st decision.TrendState
	var out decision.Trend
	for end := 35; end <= len(s.y); end++ {
		in := &model.Input{Y: s.y[:end], Price: s.price[:end], Promo: s.promo[:end], Period: 7}
		var level float64
		for _, v := range s.y[end-7 : end] {
			level += v / 7
		}
		if end == len(s.y) && !math.IsNaN(next) {
			level = next / 7
		}
		for h := range f.Mean {
			f.Mean[h] = level
		}
		out = tr.Classify(&st, in, int64(end-first), f)
	}
	return out
}

func TestClassify(t *testing.T) {
	const days = 120
	flat := func(d int) float64 { return 10 }
	stepAt := func(from int, factor float64) func(int) float64 {
		return func(d int) float64 {
			if d >= from {
				return 10 * factor
			}
			return 10
		}
	}
	for _, tc := range []struct {
		name  string
		cfg   decision.TrendConfig
		level func(int) float64
		edit  func(*daily)
		first int     // the series' first day
		next  float64 // the last forecast's next-window total; NaN: the last week's mean
		want  decision.Class
	}{
		{name: "flat", level: flat, want: decision.None},
		{name: "doubled for 10 days", level: stepAt(days-10, 2), want: decision.Rising},
		{name: "young, doubled", level: stepAt(days-10, 2), first: days - 50, want: decision.Emerging},
		{name: "halved", level: stepAt(days-10, 0.5), want: decision.Falling},
		{name: "down to a tenth", level: stepAt(days-10, 0.1), want: decision.Fading},
		{name: "doubled, forecast back to the reference", level: stepAt(days-10, 2), next: 70, want: decision.None},
		{name: "halved, forecast back to the reference", level: stepAt(days-10, 0.5), next: 70, want: decision.None},
		{name: "promotion tripling the last 5 days", level: flat, edit: func(s *daily) {
			for d := days - 5; d < days; d++ {
				s.y[d] *= 3
				s.promo[d] = 1
			}
		}, want: decision.None},
		{name: "price cut by 30% and sales up 60%", level: stepAt(days-10, 1.6), edit: func(s *daily) {
			for d := days - 10; d < days; d++ {
				s.price[d] = 1.4
			}
		}, want: decision.None},
		{name: "price raised by 30% and sales down 40%", level: stepAt(days-10, 0.6), edit: func(s *daily) {
			for d := days - 10; d < days; d++ {
				s.price[d] = 2.6
			}
		}, want: decision.None},
		{name: "from 0 to a unit a day", level: flat, edit: func(s *daily) {
			for d := range s.y {
				s.y[d] = 0
				if d >= days-7 {
					s.y[d] = 1
				}
			}
		}, want: decision.None},
		{name: "from 0 to 9 in the last week, Z 1", cfg: decision.TrendConfig{Z: 1}, level: flat, edit: func(s *daily) {
			for d := range s.y {
				s.y[d] = 0
				if d >= days-7 {
					s.y[d] = float64(d % 3)
				}
			}
		}, want: decision.None},
		{name: "from 0 to 12 in the last week, Z 1", cfg: decision.TrendConfig{Z: 1}, level: flat, edit: func(s *daily) {
			for d := range s.y {
				s.y[d] = 0
				if d >= days-6 {
					s.y[d] = 2
				}
			}
		}, want: decision.Rising},
		{name: "from 0.2 to 1 a day", level: func(d int) float64 {
			if d >= days-10 {
				return 1
			}
			return 0.2
		}, want: decision.None},
		{name: "up 50% on noisy demand", level: stepAt(days-10, 1.5), edit: func(s *daily) {
			// The same mean sold in lots of 1 to 9 units: about seven times
			// as dispersed as Poisson, so a 50% rise is within the noise.
			r := rand.New(rand.NewPCG(9, 9))
			for d, v := range s.y {
				s.y[d] = 0
				for range int(math.Round(v / 5)) {
					s.y[d] += float64(1 + r.IntN(9))
				}
			}
		}, want: decision.None},
		{name: "up 50% on Poisson demand", level: stepAt(days-10, 1.5), want: decision.Rising},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			tr, err := decision.NewTrends(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := poisson(rand.New(rand.NewPCG(1, 1)), days, tc.level)
			if tc.edit != nil {
				tc.edit(&s)
			}
			next := tc.next
			if next == 0 {
				next = math.NaN()
			}
			got := classify(t, tr, s, tc.first, next)
			if got.Class != tc.want {
				t.Errorf("class %v (score %.2f, last %.1f, reference %.1f, next %.1f), want %v", got.Class, got.Score, got.Last, got.Reference, got.Next, tc.want)
			}
			if got.Class != decision.None && got.Score < tr.Config().Z {
				t.Errorf("score %v below Z %v", got.Score, tr.Config().Z)
			}
		})
	}
}

func TestTrendConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   decision.TrendConfig
		field string
	}{
		{decision.TrendConfig{Window: -1}, "Window"},
		{decision.TrendConfig{MinChange: 1.5}, "MinChange"},
		{decision.TrendConfig{FadeShare: 0.9}, "FadeShare"},
		{decision.TrendConfig{Z: math.Inf(1)}, "Z"},
		{decision.TrendConfig{MinVolume: math.NaN()}, "MinVolume"},
		{decision.TrendConfig{Memory: -3}, "Memory"},
	} {
		if _, err := decision.NewTrends(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestParseClass(t *testing.T) {
	for _, c := range decision.Classes {
		if got, err := decision.ParseClass(c.String()); err != nil || got != c {
			t.Errorf("ParseClass(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := decision.ParseClass("none"); err == nil {
		t.Error("none is not a ranked class")
	}
}
