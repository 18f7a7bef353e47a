package decision

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHistogramQuantile checks the histogram's quantiles against the
// sorted sample's within a bin, errors beyond its range included.
func TestHistogramQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		draw func() float64
	}{
		{"normal", r.NormFloat64},
		{"skewed", func() float64 { return r.ExpFloat64()*3 - 1 }},
		{"discrete", func() float64 { return float64(r.IntN(4)) - 0.3 }},
		{"beyond range", func() float64 { return 60 * r.Float64() }},
	} {
		var h histogram
		var sample []float64
		for range 20000 {
			v := tc.draw()
			h.observe(v)
			sample = append(sample, min(max(v, histLo), histLo+histBins*histWidth))
		}
		h.fold(1)
		slices.Sort(sample)
		for _, q := range []float64{0.05, 0.5, 0.9, 0.95, 0.99} {
			got := h.quantile(q)
			want := sample[int(math.Ceil(q*float64(len(sample))))-1]
			if math.Abs(got-want) > histWidth+1e-9 {
				t.Errorf("%s: quantile(%v) = %v, sample's %v", tc.name, q, got, want)
			}
		}
	}
}

// TestHistogramFold checks that errors count only after the close that
// observed them, and that folding decays older weight.
func TestHistogramFold(t *testing.T) {
	var h histogram
	for range 100 {
		h.observe(-1)
	}
	if h.total != 0 {
		t.Fatalf("pending errors count before the fold: total %v", h.total)
	}
	h.fold(0.5)
	for range 100 {
		h.observe(1)
	}
	if h.total != 100 || h.quantile(0.99) > 0 {
		t.Fatalf("after one fold: total %v, 0.99-quantile %v; want 100 and the pending errors unseen", h.total, h.quantile(0.99))
	}
	h.fold(0.5)
	if h.total != 150 {
		t.Fatalf("after a fold with decay 0.5: total %v, want 50 + 100", h.total)
	}
	if q := h.quantile(0.3); q > 0 {
		t.Errorf("0.3-quantile %v: a third of the weight is at -1", q)
	}
	if q := h.quantile(0.4); q < 0 {
		t.Errorf("0.4-quantile %v: two thirds of the weight are at 1", q)
	}
}
