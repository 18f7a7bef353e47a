package model

import (
	"errors"
	"fmt"

	"github.com/trendstream/trendstream/model/internal/kern"
)

// This file explains a global learner's forecast of one series: integrated
// gradients (Sundararajan et al. 2017) of the mean forecast of the next
// buckets with respect to the input features, summed into the input
// groups a retail team reasons in.
//
// The attribution runs on a float64 copy of the forecasting weights, so
// that the gradients are those the float64 gradient checks verify and the
// attributions add up (completeness) to within the integration error, not
// float32 noise. Preparing copies the weights and builds the features on
// the learner's goroutine; the integration itself then needs nothing of
// the learner and may run on any goroutine.

// Group is an input group of an explanation.
type Group uint8

// The input groups. Every feature of every step of a window belongs to
// exactly one (see Explainer).
const (
	// GroupLevel is the recent level: the scaled quantities' deviations
	// from the window's mean that the trend and the seasonal pattern do
	// not explain, which the networks read mostly at the last steps.
	GroupLevel Group = iota
	// GroupWeekly is the seasonal pattern of the period (day of week for
	// daily buckets): the quantities' profile over the period and the
	// calendar's phase of it.
	GroupWeekly
	// GroupTrend is the linear trend of the quantities over the window.
	GroupTrend
	// GroupPrice is the relative price.
	GroupPrice
	// GroupPromotion is the promotion share.
	GroupPromotion
	// GroupCalendar is every other calendar covariate: the position in
	// the year, events, SNAP days.
	GroupCalendar
	// GroupIntermittency is the zero-sale indicator and the buckets
	// since the last sale.
	GroupIntermittency
	// NumGroups is the number of groups.
	NumGroups
)

var groupNames = [NumGroups]string{"recent_level", "weekly_pattern", "trend", "price", "promotion", "calendar_events", "intermittency"}

// String returns the group's name as explanations print it, such as
// "weekly_pattern".
func (g Group) String() string {
	if g < NumGroups {
		return groupNames[g]
	}
	return fmt.Sprintf("group(%d)", uint8(g))
}

// CalendarGrouper is a Calendar that says which group each of its
// covariates belongs to: GroupWeekly for an encoding of the position in
// the seasonal period, GroupCalendar for events and the position in the
// year. Without it every covariate of a Calendar counts as GroupCalendar.
type CalendarGrouper interface {
	CovariateGroup(j int) Group
}

// Defaults of ExplainConfig.
const (
	// DefaultExplainSteps is the default number of integration steps.
	DefaultExplainSteps = 32
	// DefaultExplainBuckets is the default number of forecast buckets
	// whose mean is explained.
	DefaultExplainBuckets = 7
	// maxExplainSteps bounds ExplainConfig.Steps.
	maxExplainSteps = 1024
)

// ExplainConfig configures an explanation.
type ExplainConfig struct {
	// Steps is the number of points of the midpoint rule that integrates
	// the gradients along the path from the baseline to the input, at
	// most 1024. The integration error shrinks as 1/Steps² (see
	// Explanation.Residual). The default is DefaultExplainSteps.
	Steps int
	// Buckets is the number of forecast buckets, from the first, whose
	// mean forecast is explained; at most the horizon. The default is
	// DefaultExplainBuckets or the horizon if shorter.
	Buckets int
}

// Explanation attributes the mean forecast of a series' next buckets to
// the input groups.
type Explanation struct {
	// Buckets is the number of forecast buckets averaged and Steps the
	// integration steps taken.
	Buckets, Steps int
	// Forecast is the mean forecast of the next Buckets buckets from the
	// series' whole window, f(x), and Baseline that of the baseline input,
	// f(b) (see Explainer).
	Forecast, Baseline float64
	// Groups holds each group's attribution, indexed by Group: how much
	// its inputs moved the forecast from the baseline's.
	Groups [NumGroups]float64
	// Residual is Forecast - Baseline - the sum of Groups: the error of
	// the numerical integration (integrated gradients are complete: the
	// exact attributions sum to Forecast - Baseline).
	Residual float64
}

// Explainer is a learner whose forecasts can be explained: every global
// learner (LSTM, GRU, Transformer).
//
// The explanation is integrated gradients of F, the mean forecast of the
// next Buckets buckets, s·mean(softplus(a_h)) with the series' scale s
// held, along the straight path from a baseline input b to the window's
// features x. The baseline is the window of a steady series: on every
// real step the scaled quantity at the window's mean, the price at the
// window's mean price (relative price 1 where the price is known, 0 where
// the input has none either), no promotion, a sale every bucket (zero-sale
// indicator and buckets since the last sale 0) and every calendar
// covariate 0 (the mean of a sine or cosine over its period); the mask
// and the padding are the input's. So the explanation answers: how did
// this series' pattern, prices, promotions, calendar and gaps move its
// forecast away from what a flat series of the same volume gets.
//
// Each feature's attribution is (x_i - b_i) times its gradient averaged
// over the path. The quantity's change x_q - b_q on the real steps is
// split into a linear trend and a seasonal profile, fitted together by
// least squares over the real steps (a slope plus one intercept per
// position of the period, centred; the profile only once the window holds
// two whole periods), and the rest, the recent level; each part takes the
// gradient-weighted sum of its values,
// which is integrated gradients of the same path with the three parts as
// inputs, so completeness holds for the groups. The other features map to
// one group each: the relative price to GroupPrice, the promotion share
// to GroupPromotion, the zero-sale indicator and the buckets since the
// last sale to GroupIntermittency, the mask to GroupLevel (it never
// differs from the baseline), the sin/cos of the period (without a
// Calendar) to GroupWeekly and a Calendar's covariates as its
// CalendarGrouper says, GroupCalendar otherwise.
//
// The forecast explained is that of the whole window: a recurrent
// learner that carries a series' state publishes one that may differ from
// it by the drift of the carried state (see LearnerConfig.Refresh).
type Explainer interface {
	// PrepareExplanation copies the forecasting weights and builds the
	// features of the window of in (as ForecastBatch reads it). It must
	// be called on the learner's goroutine; the result is independent
	// of the learner.
	PrepareExplanation(in *Input) (*Attribution, error)
}

// ErrNoWindow is returned, wrapped, for an input without buckets.
var ErrNoWindow = errors.New("model: no closed bucket to explain")

// Attribution is a prepared explanation of one series' forecast: a
// float64 copy of a learner's forecasting network with the series'
// features. It is not safe for concurrent use, but owes nothing to the
// learner it came from.
type Attribution struct {
	eval     gradFunc
	window   int // L
	features int // nf
	horizon  int
	levels   int
	pad      int
	scale    float64
	x, b     []float64 // L×nf input and baseline features
	parts    [3][]float64
	colGroup []Group // per feature column; the quantity column is split by parts
}

// The parts of the quantity column, in Attribution.parts.
var quantityParts = [3]Group{GroupLevel, GroupTrend, GroupWeekly}

// PrepareExplanation implements Explainer.
func (g *global[N, B]) PrepareExplanation(in *Input) (*Attribution, error) {
	if len(in.Y) == 0 {
		return nil, ErrNoWindow
	}
	net := g.net
	var none N
	if g.avg != none {
		net = g.avg
	}
	tw, ok := any(net).(twinner)
	if !ok {
		return nil, fmt.Errorf("model: %s has no input gradients", g.spec.name)
	}
	L, nf := g.sh.window, g.sh.features
	a := &Attribution{
		eval: tw.gradTwin(), window: L, features: nf, horizon: g.sh.horizon, levels: g.sh.levels,
		x: make([]float64, L*nf), b: make([]float64, L*nf),
	}
	norm, pad := buildFeatures(&g.feat, in, len(in.Y), a.x, nf, 0, 1, 0, nil, true)
	a.scale, a.pad = norm.scale, pad
	a.colGroup = make([]Group, nf)
	a.colGroup[1] = GroupLevel
	a.colGroup[2] = GroupPrice
	a.colGroup[3] = GroupPromotion
	a.colGroup[4], a.colGroup[5] = GroupIntermittency, GroupIntermittency
	cg, _ := g.feat.cal.(CalendarGrouper)
	for j := baseFeatures; j < nf; j++ {
		switch {
		case g.feat.cal == nil:
			a.colGroup[j] = GroupWeekly
		case cg != nil:
			a.colGroup[j] = cg.CovariateGroup(j - baseFeatures)
		default:
			a.colGroup[j] = GroupCalendar
		}
	}
	a.baseline(in.Start+int64(len(in.Y)-L), in.Period)
	return a, nil
}

// baseline sets a.b from a.x (see Explainer) and splits the quantity
// column's change into a.parts; first is the bucket index of the window's
// first step and period the seasonal period.
func (a *Attribution) baseline(first int64, period int) {
	L, nf, pad := a.window, a.features, a.pad
	n := L - pad
	var mq float64
	for t := pad; t < L; t++ {
		mq += a.x[t*nf]
	}
	mq /= float64(n)
	for t := pad; t < L; t++ {
		x, b := a.x[t*nf:][:nf], a.b[t*nf:][:nf]
		b[0], b[1] = mq, x[1]
		if x[2] != 0 {
			b[2] = 1
		}
	}
	d := make([]float64, L)
	for t := pad; t < L; t++ {
		d[t] = a.x[t*nf] - mq
	}
	// Trend and seasonal profile: least squares of d on the step and, once
	// two whole periods are in the window, one intercept per position of
	// the period, so that neither takes part of the other (a weekly
	// pattern has a slope over the window's weeks, a trend has a weekly
	// profile of means). The slope is the within-position one; the
	// profile is the intercepts, centred.
	phases := 1
	if period >= 2 && n >= 2*period {
		phases = period
	}
	phase := func(t int) int {
		return int(((first+int64(t))%int64(phases) + int64(phases)) % int64(phases))
	}
	tmean, dmean, cnt := make([]float64, phases), make([]float64, phases), make([]float64, phases)
	for t := pad; t < L; t++ {
		k := phase(t)
		tmean[k] += float64(t)
		dmean[k] += d[t]
		cnt[k]++
	}
	for k := range cnt {
		if cnt[k] > 0 {
			tmean[k] /= cnt[k]
			dmean[k] /= cnt[k]
		}
	}
	var sxy, sxx float64
	for t := pad; t < L; t++ {
		k := phase(t)
		sxy += (float64(t) - tmean[k]) * (d[t] - dmean[k])
		sxx += (float64(t) - tmean[k]) * (float64(t) - tmean[k])
	}
	slope := 0.0
	if sxx > 0 {
		slope = sxy / sxx
	}
	tm := float64(pad+L-1) / 2
	trend, season := make([]float64, L), make([]float64, L)
	if phases > 1 {
		var mean float64
		for k := range dmean {
			dmean[k] -= slope * (tmean[k] - tm)
			mean += dmean[k]
		}
		mean /= float64(phases)
		for t := pad; t < L; t++ {
			season[t] = dmean[phase(t)] - mean
		}
	}
	for t := pad; t < L; t++ {
		trend[t] = slope * (float64(t) - tm)
	}
	level := make([]float64, L)
	for t := pad; t < L; t++ {
		level[t] = d[t] - trend[t] - season[t]
	}
	a.parts = [3][]float64{level, trend, season}
}

// Explain integrates the gradients and returns the explanation. It
// returns an error naming the field of an invalid cfg.
func (a *Attribution) Explain(cfg ExplainConfig) (Explanation, error) {
	if cfg.Steps == 0 {
		cfg.Steps = DefaultExplainSteps
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = min(DefaultExplainBuckets, a.horizon)
	}
	if cfg.Steps < 1 || cfg.Steps > maxExplainSteps {
		return Explanation{}, fmt.Errorf("model: ExplainConfig.Steps %d outside [1, %d]", cfg.Steps, maxExplainSteps)
	}
	if cfg.Buckets < 1 || cfg.Buckets > a.horizon {
		return Explanation{}, fmt.Errorf("model: ExplainConfig.Buckets %d outside [1, %d]", cfg.Buckets, a.horizon)
	}
	L, nf, m := a.window, a.features, cfg.Steps
	cell := L * nf
	ex := Explanation{Buckets: cfg.Buckets, Steps: m}
	avg := make([]float64, cell) // the gradient averaged over the path
	// Row 0 is the input, row 1 the baseline, the rest the midpoints
	// alpha = (k+1/2)/m of the path, in chunks of explainChunk rows.
	total := m + 2
	rows := min(total, explainChunk)
	x, dx := make([]float64, rows*cell), make([]float64, rows*cell)
	out := make([]float64, rows*a.outputs())
	var f []float64
	for lo := 0; lo < total; lo += rows {
		hi := min(lo+rows, total)
		for r := range hi - lo {
			alpha := 1.0
			switch k := lo + r; k {
			case 0:
			case 1:
				alpha = 0
			default:
				alpha = (float64(k-2) + 0.5) / float64(m)
			}
			row := x[r*cell : (r+1)*cell]
			for i := range row {
				row[i] = a.b[i] + alpha*(a.x[i]-a.b[i])
			}
		}
		f = a.gradients(x, hi-lo, cfg.Buckets, out, dx, f[:0])
		for r := range hi - lo {
			switch lo + r {
			case 0:
				ex.Forecast = f[r]
			case 1:
				ex.Baseline = f[r]
			default:
				for i, g := range dx[r*cell : (r+1)*cell] {
					avg[i] += g
				}
			}
		}
	}
	for i := range avg {
		avg[i] /= float64(m)
	}
	var sum float64
	for t := a.pad; t < L; t++ {
		for j := range nf {
			i := t*nf + j
			if j == 0 {
				for p, g := range quantityParts {
					v := a.parts[p][t] * avg[i]
					ex.Groups[g] += v
					sum += v
				}
				continue
			}
			v := (a.x[i] - a.b[i]) * avg[i]
			ex.Groups[a.colGroup[j]] += v
			sum += v
		}
	}
	ex.Residual = ex.Forecast - ex.Baseline - sum
	return ex, nil
}

// explainChunk bounds the windows of one pass of an explanation.
const explainChunk = 32

func (a *Attribution) outputs() int { return a.horizon * (1 + a.levels) }

// gradients runs rows windows of features x through the network and
// writes, per row, F (the mean forecast of the first buckets steps)
// appended to f, and its gradient with respect to the features to dx.
func (a *Attribution) gradients(x []float64, rows, buckets int, out, dx, f []float64) []float64 {
	o, nq := a.outputs(), a.levels
	w := a.scale / float64(buckets)
	a.eval(x, a.pad, rows, out, func(head []float64) {
		for r := range rows {
			hr := head[r*o : (r+1)*o]
			var v float64
			for h := range buckets {
				sp, sg := softplusSigmoid(hr[h*(1+nq)])
				v += sp
				hr[h*(1+nq)] = w * sg
			}
			f = append(f, w*v)
			for h := range a.horizon {
				col := h * (1 + nq)
				if h >= buckets {
					hr[col] = 0
				}
				clear(hr[col+1 : col+1+nq])
			}
		}
	}, dx)
	return f
}

// gradFunc evaluates a float64 network on rows windows of features x (row
// r's step t at x[(r*L+t)*nf:], each window padded by pad steps). It
// writes the head pre-activations to out (rows×outputs), calls seed with
// them to turn them in place into the gradient of the output explained,
// backpropagates it and writes the gradient of the features to dx, laid
// out like x.
type gradFunc func(x []float64, pad, rows int, out []float64, seed func(head []float64), dx []float64)

// twinner is a float32 network that makes a float64 copy of itself with
// input gradients.
type twinner interface {
	gradTwin() gradFunc
}

// inputGrader is a float64 network whose backward pass yields the
// gradient of its input features.
type inputGrader[B any] interface {
	// gradBufs returns training buffers for rows windows that keep the
	// input gradient.
	gradBufs(rows int) B
	// inputGrad writes the gradient of the features after backward to
	// dst, row r's step t at dst[(r*L+t)*nf:].
	inputGrad(bf B, dst []float64)
}

// newGradFunc returns the gradFunc of the float64 network n of shape sh.
func newGradFunc[B buffers[float64], N interface {
	network[float64, B]
	inputGrader[B]
}](n N, sh shape) gradFunc {
	var bf, none B
	L, nf, o := sh.window, sh.features, sh.outputs()
	return func(x []float64, pad, rows int, out []float64, seed func([]float64), dx []float64) {
		if bf == none || bf.rowData().cap < rows {
			bf = n.gradBufs(rows)
		}
		bf.setRows(rows)
		rb := bf.rowData()
		for r := range rows {
			dst, ld, row, nrows := bf.featureDst(r)
			for t := range L {
				copy(dst[(t*nrows+row)*ld:][:nf], x[(r*L+t)*nf:][:nf])
			}
			rb.scale[r], rb.pad[r] = 1, int32(pad)
		}
		rb.setMaxPad()
		n.forward(bf)
		copy(out, rb.out[:rows*o])
		seed(rb.out[:rows*o])
		n.backward(bf)
		n.inputGrad(bf, dx)
	}
}

// gradTwin implements twinner.
func (n *rnnNet[T]) gradTwin() gradFunc {
	t := newRNNNet[float64](n.sh, n.cell, n.taus, true)
	for i, p := range n.params {
		t.params[i] = float64(p)
	}
	t.wxp[0] = make([]float64, kern.PackedLen(t.gw, t.lay[0].in))
	t.pack()
	return newGradFunc[*rnnBufs[float64]](t, t.sh)
}

// gradBufs implements inputGrader.
func (n *rnnNet[T]) gradBufs(rows int) *rnnBufs[T] {
	bf := newRNNBufs(n, n.sh, rows, true)
	bf.dx = make([]T, n.sh.window*rows*n.sh.features)
	return bf
}

// inputGrad implements inputGrader: backward leaves step t of row r at
// bf.dx[(t*rows+r)*nf:].
func (n *rnnNet[T]) inputGrad(bf *rnnBufs[T], dst []float64) {
	L, nf, rows := n.sh.window, n.sh.features, bf.rows
	for r := range rows {
		for t := range L {
			src := bf.dx[(t*rows+r)*nf:][:nf]
			d := dst[(r*L+t)*nf:][:nf]
			for j, v := range src {
				d[j] = float64(v)
			}
		}
	}
}

// gradTwin implements twinner.
func (n *trfNet[T]) gradTwin() gradFunc {
	t := newTrfNet[float64](n.sh, n.taus, true)
	for i, p := range n.params {
		t.params[i] = float64(p)
	}
	t.pack()
	return newGradFunc[*trfBufs[float64]](t, t.sh)
}

// gradBufs implements inputGrader.
func (n *trfNet[T]) gradBufs(rows int) *trfBufs[T] { return n.newBufs(rows, true) }

// inputGrad implements inputGrader: backward leaves the gradient of the
// first block's input X_0 = [x | 1]·W_in + PE in bf.dx[layers%2], so the
// features' is that times the weight rows of W_in transposed.
func (n *trfNet[T]) inputGrad(bf *trfBufs[T], dst []float64) {
	P, d, nf := bf.rows*n.sh.window, n.sh.hidden, n.sh.features
	dy := bf.dx[n.sh.layers%2]
	g, ok := any(dst[:P*nf]).([]T)
	if !ok {
		g = make([]T, P*nf)
	}
	n.k.gemmNT(P, nf, d, dy, d, n.of(n.params, n.win.s), d, g, nf, false)
	if !ok {
		for i, v := range g {
			dst[i] = float64(v)
		}
	}
}

var (
	_ Explainer = (*LSTM)(nil)
	_ Explainer = (*GRU)(nil)
	_ Explainer = (*Transformer)(nil)
)
