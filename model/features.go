package model

import "math"

// Feature layout of the global learners' inputs (see the package
// documentation, Global learners).
const (
	baseFeatures = 6  // features before the calendar covariates
	gapCap       = 28 // cap of the buckets-since-last-sale feature
	priceCap     = 10 // cap of the relative price
)

// featurizer builds the input features of windows, the same for every
// global learner (see the package documentation, Global learners).
type featurizer struct {
	window, features int
	cal              Calendar
	calBuf           []float32
}

// newFeaturizer returns the featurizer of a learner configured by cfg,
// which has its defaults filled in.
func newFeaturizer(cfg LearnerConfig) featurizer {
	nf, calW := baseFeatures+2, 0
	if cfg.Calendar != nil {
		calW = cfg.Calendar.Width()
		nf = baseFeatures + calW
	}
	return featurizer{window: cfg.Window, features: nf, cal: cfg.Calendar, calBuf: make([]float32, calW)}
}

// featNorm is what the features of a window are relative to: its scale s
// and the mean of its known prices.
type featNorm struct{ scale, pmean float64 }

// buildFeatures writes the features of steps first to L-1 of the window of
// in that ends before Y index end (exclusive) into row r of x and returns
// the window's norm and number of padded steps. The features are relative
// to keep instead when it is not nil (the norm of a carried state's last
// full run). The features of step t go to the first features columns of
// row (t-first)*rows+r of x, whose rows are ld long. With sanitize,
// non-finite quantities read as zero.
func buildFeatures[T float](f *featurizer, in *Input, end int, x []T, ld, r, rows, first int, keep *featNorm, sanitize bool) (norm featNorm, pad int) {
	L, nf := f.window, f.features
	start := end - L
	s0 := max(start, 0)
	pad = s0 - start
	if keep != nil {
		norm = *keep
	} else {
		norm = windowNorm(in, s0, end, sanitize)
	}
	scale, pmean := norm.scale, norm.pmean
	lo := max(s0-gapCap, 0)
	last := lo - 1
	for i := s0 - 1; i >= lo; i-- {
		if saleQty(in.Y[i], sanitize) > 0 {
			last = i
			break
		}
	}
	period := int64(max(in.Period, 1))
	for t := range L {
		if t < pad {
			if t >= first {
				clear(x[((t-first)*rows+r)*ld:][:nf])
			}
			continue
		}
		i := start + t
		y := saleQty(in.Y[i], sanitize)
		if t < first {
			if y > 0 {
				last = i
			}
			continue
		}
		row := x[((t-first)*rows+r)*ld:][:nf]
		row[0] = T(y / scale)
		row[1] = 1
		row[2] = T(min(knownPrice(in, i)/pmean, priceCap))
		row[3] = 0
		if i < len(in.Promo) {
			if p := in.Promo[i]; p > 0 { // false for NaN
				row[3] = T(min(p, 1))
			}
		}
		if y > 0 {
			last = i
			row[4] = 0
		} else {
			row[4] = 1
		}
		row[5] = T(float64(min(i-last, gapCap)) / gapCap)
		bucket := in.Start + int64(i)
		if f.cal != nil {
			f.cal.Covariates(bucket, f.calBuf)
			for j, c := range f.calBuf {
				row[baseFeatures+j] = T(c)
			}
			continue
		}
		k := bucket % period
		if k < 0 {
			k += period
		}
		sin, cos := math.Sincos(2 * math.Pi * float64(k) / float64(period))
		row[baseFeatures], row[baseFeatures+1] = T(sin), T(cos)
	}
	return norm, pad
}

// windowNorm returns the norm of the real steps [s0, end) of in.
func windowNorm(in *Input, s0, end int, sanitize bool) featNorm {
	var sum, psum float64
	var pn int
	for i := s0; i < end; i++ {
		sum += saleQty(in.Y[i], sanitize)
		if p := knownPrice(in, i); p > 0 {
			psum += p
			pn++
		}
	}
	norm := featNorm{scale: 1 + max(sum/float64(end-s0), 0), pmean: 1}
	if pn > 0 {
		norm.pmean = psum / float64(pn)
	}
	return norm
}

// saleQty returns y, or 0 for a non-finite y when sanitize is set.
func saleQty(y float64, sanitize bool) float64 {
	if sanitize && !finite(y) {
		return 0
	}
	return y
}

// knownPrice returns the price of bucket i of in when known (positive and
// finite), 0 otherwise.
func knownPrice(in *Input, i int) float64 {
	if i >= len(in.Price) {
		return 0
	}
	p := float64(in.Price[i])
	if !(p > 0) || math.IsInf(p, 0) {
		return 0
	}
	return p
}
