package model

import (
	"fmt"
	"math"
	"slices"
)

// Names of the classical forecasters, as they appear in forecast records
// and reports.
const (
	NameNaive         = "naive"
	NameSeasonalNaive = "seasonal_naive"
	NameMA28          = "ma28"
	NameETS           = "ets"
	NameTSB           = "tsb"
)

// Baselines lists the classical forecasters New knows, in report order.
var Baselines = []string{NameNaive, NameSeasonalNaive, NameMA28, NameETS, NameTSB}

// New returns the classical forecaster with the given name.
func New(name string, cfg Config) (Forecaster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := base{cfg: cfg}
	switch name {
	case NameNaive:
		return &Naive{b}, nil
	case NameSeasonalNaive:
		return &SeasonalNaive{b}, nil
	case NameMA28:
		return &MA{base: b, Window: 28}, nil
	case NameETS:
		return &ETS{base: b}, nil
	case NameTSB:
		return &TSB{base: b, Alpha: 0.1, Beta: 0.1}, nil
	}
	return nil, fmt.Errorf("model: unknown forecaster %q (have %v)", name, Baselines)
}

// base holds what every classical forecaster shares: its configuration and
// a scratch buffer for residuals.
type base struct {
	cfg Config
	res []float64 // residuals or values whose quantiles make the bands
	off []float64 // one quantile of res per level
}

// residualBands sets dst's means to the clamped point forecasts and its
// quantiles to the point plus the empirical quantiles of the one-step
// in-sample residuals in b.res, clamped at zero. With no residuals every
// quantile equals the mean.
func (b *base) residualBands(dst *Forecast) {
	b.sortedQuantiles()
	nq := len(b.off)
	for h := range dst.Mean {
		m := max(dst.Mean[h], 0)
		dst.Mean[h] = m
		for j, off := range b.off {
			dst.Q[h*nq+j] = max(m+off, 0)
		}
	}
}

// sortedQuantiles sorts b.res and sets b.off to its quantiles at the
// configured levels, all zero when b.res is empty.
func (b *base) sortedQuantiles() {
	slices.Sort(b.res)
	b.off = b.off[:0]
	for _, q := range b.cfg.Levels {
		v := 0.0
		if len(b.res) > 0 {
			v = quantileSorted(b.res, q)
		}
		b.off = append(b.off, v)
	}
}

// quantileSorted returns the q-quantile of sorted, interpolating linearly
// between order statistics (Hyndman and Fan's type 7, numpy's default).
func quantileSorted(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// Naive forecasts every step as the last observed bucket. Its quantiles are
// the point plus the empirical quantiles of its one-step in-sample errors.
type Naive struct{ base }

// Name returns "naive".
func (*Naive) Name() string { return NameNaive }

// Forecast implements Forecaster.
func (m *Naive) Forecast(dst *Forecast, in *Input) { m.naive(dst, in.Y) }

// naive writes the naive forecast of y into dst.
func (b *base) naive(dst *Forecast, y []float64) {
	last := 0.0
	if len(y) > 0 {
		last = y[len(y)-1]
	}
	for h := range dst.Mean {
		dst.Mean[h] = last
	}
	b.res = b.res[:0]
	for t := 1; t < len(y); t++ {
		b.res = append(b.res, y[t]-y[t-1])
	}
	b.residualBands(dst)
}

// SeasonalNaive repeats the last seasonal cycle (the last 7 buckets for
// daily data). With less than a cycle of history it falls back to Naive.
// Its quantiles are the point plus the empirical quantiles of its one-step
// in-sample errors.
type SeasonalNaive struct{ base }

// Name returns "seasonal_naive".
func (*SeasonalNaive) Name() string { return NameSeasonalNaive }

// Forecast implements Forecaster.
func (m *SeasonalNaive) Forecast(dst *Forecast, in *Input) {
	y, p := in.Y, in.Period
	if p < 1 || len(y) < p {
		m.naive(dst, y)
		return
	}
	n := len(y)
	for h := range dst.Mean {
		dst.Mean[h] = y[n-p+h%p]
	}
	m.res = m.res[:0]
	for t := p; t < n; t++ {
		m.res = append(m.res, y[t]-y[t-p])
	}
	m.residualBands(dst)
}

// MA forecasts every step as the mean of the last Window buckets (of all
// buckets when fewer). Its quantiles are the empirical quantiles of those
// buckets, which suits intermittent demand better than symmetric bands.
type MA struct {
	base
	// Window is the number of buckets averaged.
	Window int
}

// Name returns "ma28" for a 28-bucket window and "maN" otherwise.
func (m *MA) Name() string {
	if m.Window == 28 {
		return NameMA28
	}
	return fmt.Sprintf("ma%d", m.Window)
}

// Forecast implements Forecaster.
func (m *MA) Forecast(dst *Forecast, in *Input) {
	y := in.Y[max(len(in.Y)-m.Window, 0):]
	m.res = append(m.res[:0], y...)
	m.sortedQuantiles()
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	if len(y) > 0 {
		mean /= float64(len(y))
	}
	nq := len(m.off)
	for h := range dst.Mean {
		dst.Mean[h] = max(mean, 0)
		for j, v := range m.off {
			dst.Q[h*nq+j] = max(v, 0)
		}
	}
}

// ETS is additive exponential smoothing without trend: ETS(A,N,A) with the
// seasonal period of the input when at least two cycles of history exist,
// simple exponential smoothing otherwise. The smoothing factors are chosen
// per forecast from a small grid by the one-step in-sample squared error
// over the input window. Quantiles are the point plus the empirical
// quantiles of the one-step errors of the chosen fit.
type ETS struct {
	base
	season []float64
}

var (
	etsAlphas = []float64{0.05, 0.1, 0.2, 0.3, 0.5}
	etsGammas = []float64{0, 0.05, 0.1, 0.2}
	noGamma   = []float64{0}
)

// Name returns "ets".
func (*ETS) Name() string { return NameETS }

// Forecast implements Forecaster.
func (m *ETS) Forecast(dst *Forecast, in *Input) {
	y, p := in.Y, in.Period
	if len(y) == 0 {
		clear(dst.Mean)
		m.res = m.res[:0]
		m.residualBands(dst)
		return
	}
	if p < 2 || len(y) < 2*p {
		p = 0
	}
	gammas := etsGammas
	if p == 0 {
		gammas = noGamma
	}
	bestA, bestG, bestSSE := 0.0, 0.0, math.Inf(1)
	for _, a := range etsAlphas {
		for _, g := range gammas {
			if sse := m.fit(y, p, a, g, false); sse < bestSSE {
				bestA, bestG, bestSSE = a, g, sse
			}
		}
	}
	level := m.fit(y, p, bestA, bestG, true)
	n := len(y)
	for h := range dst.Mean {
		dst.Mean[h] = level
		if p > 0 {
			dst.Mean[h] += m.season[(n+h)%p]
		}
	}
	m.residualBands(dst)
}

// fit runs the smoothing recursion over y. It returns the sum of squared
// one-step errors, or, when keep is set, the final level, leaving the final
// seasonal state in m.season and the errors in m.res.
func (m *ETS) fit(y []float64, p int, alpha, gamma float64, keep bool) float64 {
	level, start := y[0], 1
	m.season = m.season[:0]
	if p > 0 {
		level = 0
		for _, v := range y[:p] {
			level += v
		}
		level /= float64(p)
		for _, v := range y[:p] {
			m.season = append(m.season, v-level)
		}
		start = p
	}
	m.res = m.res[:0]
	sse := 0.0
	for t := start; t < len(y); t++ {
		fitted := level
		if p > 0 {
			fitted += m.season[t%p]
		}
		e := y[t] - fitted
		sse += e * e
		level += alpha * e
		if p > 0 {
			m.season[t%p] += gamma * e
		}
		if keep {
			m.res = append(m.res, e)
		}
	}
	if keep {
		return level
	}
	return sse
}

// TSB is the Teunter-Syntetos-Babai method for intermittent demand: it
// smooths the probability of a sale every bucket (factor Beta) and the size
// of non-zero sales when they occur (factor Alpha), and forecasts their
// product for every step. Both start from the input window's statistics.
// Quantiles are the point plus the empirical quantiles of the one-step
// in-sample errors.
type TSB struct {
	base
	// Alpha smooths the demand size, Beta the demand probability.
	Alpha, Beta float64
}

// Name returns "tsb".
func (*TSB) Name() string { return NameTSB }

// Forecast implements Forecaster.
func (m *TSB) Forecast(dst *Forecast, in *Input) {
	y := in.Y
	var nonzero int
	var size float64
	for _, v := range y {
		if v > 0 {
			nonzero++
			size += v
		}
	}
	prob := 0.0
	if nonzero > 0 {
		prob = float64(nonzero) / float64(len(y))
		size /= float64(nonzero)
	}
	m.res = m.res[:0]
	for _, v := range y {
		m.res = append(m.res, v-prob*size)
		if v > 0 {
			prob += m.Beta * (1 - prob)
			size += m.Alpha * (v - size)
		} else {
			prob -= m.Beta * prob
		}
	}
	for h := range dst.Mean {
		dst.Mean[h] = prob * size
	}
	m.residualBands(dst)
}
