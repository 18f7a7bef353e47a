package decision

import "math"

// The calibration histograms cover normalized errors from histLo to
// histLo + histBins*histWidth; errors beyond fall into the edge bins.
const (
	histLo    = -10.0
	histWidth = 0.05
	histBins  = 800
)

// histogram is an exponentially decayed histogram of normalized forecast
// errors: the pooled calibration of one stratum. Errors observed during a
// close wait in pending until the next close folds them in, so that every
// series of a close sees the same calibration whatever their order.
type histogram struct {
	w       [histBins]float64 // decayed weights
	pending [histBins]float64 // counts of the current close
	total   float64
	cum     [histBins]float64 // cumulative weights, valid while fresh
	fresh   bool
}

func (h *histogram) bin(z float64) int {
	b := int(math.Floor((z - histLo) / histWidth))
	return min(max(b, 0), histBins-1)
}

// observe adds an error to the current close's counts.
func (h *histogram) observe(z float64) { h.pending[h.bin(z)]++ }

// fold decays the weights by decay and adds the pending counts.
func (h *histogram) fold(decay float64) {
	h.total = 0
	for i := range h.w {
		h.w[i] = h.w[i]*decay + h.pending[i]
		h.pending[i] = 0
		h.total += h.w[i]
	}
	h.fresh = false
}

// quantile returns the q-quantile of the weights, interpolated linearly
// within the bin it falls in. The histogram must have weight.
func (h *histogram) quantile(q float64) float64 {
	if !h.fresh {
		var c float64
		for i, w := range h.w {
			c += w
			h.cum[i] = c
		}
		h.fresh = true
	}
	target := q * h.total
	lo, hi := 0, histBins-1
	for lo < hi {
		mid := (lo + hi) / 2
		if h.cum[mid] >= target {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	before := 0.0
	if lo > 0 {
		before = h.cum[lo-1]
	}
	frac := 1.0
	if w := h.w[lo]; w > 0 {
		frac = (target - before) / w
	}
	return histLo + (float64(lo)+frac)*histWidth
}
