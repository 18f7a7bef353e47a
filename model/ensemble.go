package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// EnsembleConfig configures an Ensemble. The zero value of each field
// means its default.
type EnsembleConfig struct {
	// Candidates is the number of candidate forecasters. Required.
	Candidates int
	// Fallback is the candidate published alone while no eligible
	// candidate has been scored MinScores times at every horizon.
	Fallback int
	// Horizons are the steps ahead, increasing and each in [1, 366], at
	// which the candidates' forecasts are scored against the actuals; a
	// candidate's error is the mean over them. They must be within the
	// candidates' forecasts (see EnsembleHorizons). The default is
	// DefaultEnsembleHorizons.
	Horizons []int
	// Power is the exponent of the weights: a candidate's weight in the
	// mean is proportional to its root mean squared error to the power
	// -Power. Large powers approach picking the best candidate, small ones
	// an equal average. The default is DefaultEnsemblePower.
	Power float64
	// Window is the number of buckets whose total Mix.Errors reports (the
	// online next-week error of metrics). The default is 7.
	Window int
	// Alpha is the smoothing factor of the exponentially weighted errors,
	// which are plain means of the first 1/Alpha scores. The default is
	// 0.01: per-series errors are noisy, and a long memory keeps the
	// weights from chasing the noise.
	Alpha float64
	// MinScores is how many scores a candidate needs at every horizon to
	// take part. The default is DefaultEnsembleMinScores.
	MinScores int
}

// DefaultEnsemblePower is the default EnsembleConfig.Power.
const DefaultEnsemblePower = 16

// DefaultEnsembleMinScores is the default EnsembleConfig.MinScores.
const DefaultEnsembleMinScores = 14

// DefaultEnsembleHorizons are the horizons an EnsembleConfig scores at by
// default: the next step, and weekly steps out to four weeks, so a
// candidate good at the next days but drifting over a month (or the
// reverse) is weighed by what a 28-step forecast gets right.
var DefaultEnsembleHorizons = []int{1, 7, 14, 21, 28}

// EnsembleHorizons returns the default horizons a forecast of the given
// number of steps has: those up to it, and at least the first step. A
// horizon beyond the forecast would never be scored, and no candidate
// would ever take part.
func EnsembleHorizons(steps int) []int {
	var hs []int
	for _, h := range DefaultEnsembleHorizons {
		if h <= steps || len(hs) == 0 {
			hs = append(hs, h)
		}
	}
	return hs
}

// Ensemble combines, for each series, the forecasts of candidate
// forecasters by their recent accuracy on that series. Each candidate's
// forecasts are scored as their steps come due, at each of the Horizons,
// by an exponentially weighted mean squared error; a candidate's error is
// the root of the mean of these over the horizons. Then:
//
//   - the mean is the average of the candidates' means weighted by
//     error^-Power, normalised, so that a candidate clearly worse on a
//     series fades out of it while close candidates average, which is
//     more accurate than either alone;
//   - the quantiles are those of the candidate with the least exponentially
//     weighted pinball loss of its next-bucket quantiles, so a band comes
//     from one model and stays calibrated (the most accurate mean does not
//     always come with the best band: a model can be sharp and biased, or
//     accurate and overconfident).
//
// Candidates the caller marks ineligible (a model that has not trained
// enough) and candidates not yet scored MinScores times at every horizon
// take no part; until one may, the fallback is published alone. The
// per-series state is an EnsembleState; an Ensemble itself is stateless
// and safe for concurrent use.
type Ensemble struct {
	cfg  EnsembleConfig
	ring int // forecast values kept per candidate: the sum of the horizons
	span int // buckets whose forecasts are awaited: max(Window, last horizon)
}

// NewEnsemble returns an Ensemble.
func NewEnsemble(cfg EnsembleConfig) (*Ensemble, error) {
	if cfg.Window == 0 {
		cfg.Window = 7
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = 0.01
	}
	if cfg.MinScores == 0 {
		cfg.MinScores = DefaultEnsembleMinScores
	}
	if cfg.Power == 0 {
		cfg.Power = DefaultEnsemblePower
	}
	if len(cfg.Horizons) == 0 {
		cfg.Horizons = DefaultEnsembleHorizons
	}
	cfg.Horizons = slices.Clone(cfg.Horizons)
	switch {
	case cfg.Candidates < 1 || cfg.Candidates > 64:
		return nil, fmt.Errorf("model: ensemble of %d candidates", cfg.Candidates)
	case cfg.Fallback < 0 || cfg.Fallback >= cfg.Candidates:
		return nil, fmt.Errorf("model: ensemble fallback %d outside [0, %d)", cfg.Fallback, cfg.Candidates)
	case cfg.Window < 1 || cfg.Window > 366:
		return nil, fmt.Errorf("model: ensemble window %d outside [1, 366]", cfg.Window)
	case !(cfg.Alpha > 0 && cfg.Alpha <= 1):
		return nil, fmt.Errorf("model: ensemble alpha %v outside (0, 1]", cfg.Alpha)
	case cfg.MinScores < 1:
		return nil, fmt.Errorf("model: ensemble MinScores %d is below 1", cfg.MinScores)
	case !(cfg.Power > 0 && cfg.Power <= 64):
		return nil, fmt.Errorf("model: ensemble power %v outside (0, 64]", cfg.Power)
	case len(cfg.Horizons) > 16:
		return nil, fmt.Errorf("model: ensemble has %d horizons, at most 16", len(cfg.Horizons))
	}
	e := &Ensemble{cfg: cfg}
	for k, h := range cfg.Horizons {
		if h < 1 || h > 366 || (k > 0 && h <= cfg.Horizons[k-1]) {
			return nil, fmt.Errorf("model: ensemble horizons %v are not increasing within [1, 366]", cfg.Horizons)
		}
		e.ring += h
	}
	e.span = max(cfg.Window, cfg.Horizons[len(cfg.Horizons)-1])
	return e, nil
}

// EnsembleState is an Ensemble's state for one series.
//
// The forecasts awaiting their actuals are kept per candidate and horizon
// h in a ring of h slots: the step-h mean made at bucket a sits in slot
// a mod h until bucket a+h reads it and the forecast of a+h replaces it.
// at records which buckets forecasts were made at, so a gap in a series'
// closes scores nothing stale.
type EnsembleState struct {
	total  []float64 // per candidate, then the combination, and bucket mod Window: forecast totals
	at     []int64   // per bucket mod span: bucket the forecasts were made at
	fc     []float32 // per candidate, horizon ring: step-h means awaiting their actuals
	err    []float64 // per candidate and horizon: weighted squared error
	scores []int32   // per candidate and horizon: number of scores
	q      []float64 // per candidate: next-bucket quantiles made at qAt
	qAt    int64
	qErr   []float64 // per candidate: weighted pinball loss
	qScore []int32
	hs     []int // the ensemble's horizons, shared and read-only
}

// Mix says how an Ensemble combined a series' forecasts.
type Mix struct {
	// Weights holds each candidate's weight in the mean. The slice is
	// reused by the next Update.
	Weights []float64
	// Quantiles is the candidate whose quantiles were published.
	Quantiles int
	// Errors holds, when this update scored the forecasts made Window
	// buckets earlier, the absolute error of each candidate's total over
	// the Window buckets and then of the combined mean's total; NaN where
	// nothing was scored. The slice is reused by the next Update.
	Errors []float64
}

// NewState returns the state of a series no forecast was made for.
func (e *Ensemble) NewState() *EnsembleState {
	w, n, nh := e.cfg.Window, e.cfg.Candidates, len(e.cfg.Horizons)
	st := &EnsembleState{
		total:  make([]float64, (n+1)*w),
		at:     make([]int64, e.span),
		fc:     make([]float32, n*e.ring),
		err:    make([]float64, n*nh),
		scores: make([]int32, n*nh),
		qAt:    math.MinInt64,
		qErr:   make([]float64, n),
		qScore: make([]int32, n),
		hs:     e.cfg.Horizons,
	}
	for i := range st.at {
		st.at[i] = math.MinInt64
	}
	return st
}

// smooth adds score x to the exponentially weighted mean v of n scores.
// Until 1/Alpha scores have come it is their plain mean, so the first
// scores weigh no more than later ones.
func (e *Ensemble) smooth(v *float64, n *int32, x float64) {
	*v += max(e.cfg.Alpha, 1/float64(*n+1)) * (x - *v)
	if *n < math.MaxInt32 {
		*n++
	}
}

// mod returns a mod m in [0, m).
func mod(a int64, m int) int { return int(((a % int64(m)) + int64(m)) % int64(m)) }

// Update is called at each close of a series' bucket with the series'
// recent actuals (ending at the closed bucket, at least the last Window
// buckets for every score to be made), the candidates' forecasts made at
// it and which candidates may take part. It scores the forecasts that
// came due, records the new ones and writes the combined forecast to dst,
// which must be sized like the candidates' forecasts. scratch must hold at
// least 2·Candidates+1 values; the Mix's slices live in it. Update does
// not allocate once the state has been used with forecasts of this shape.
func (e *Ensemble) Update(st *EnsembleState, bucket int64, recent []float64, fcs []*Forecast, eligible []bool, dst *Forecast, scratch []float64) Mix {
	w, n, hs := e.cfg.Window, e.cfg.Candidates, e.cfg.Horizons
	nh := len(hs)
	mix := Mix{Weights: scratch[:n], Errors: scratch[n : 2*n+1], Quantiles: -1}
	for i := range mix.Errors {
		mix.Errors[i] = math.NaN()
	}

	// Score the next-bucket quantiles made at the previous bucket.
	nq := len(fcs[0].Levels)
	if len(recent) > 0 && st.qAt == bucket-1 && len(st.q) == n*nq {
		y := recent[len(recent)-1]
		for c := range n {
			var loss float64
			for j, q := range fcs[0].Levels {
				loss += Pinball(q, y, st.q[c*nq+j])
			}
			if !math.IsNaN(loss) {
				e.smooth(&st.qErr[c], &st.qScore[c], loss)
			}
		}
	}
	// Score the step-h forecasts made h buckets ago.
	off := 0
	for k, h := range hs {
		if st.at[mod(bucket-int64(h), e.span)] == bucket-int64(h) && len(recent) > 0 {
			y := recent[len(recent)-1]
			slot := off + mod(bucket, h)
			for c := range n {
				if f := float64(st.fc[c*e.ring+slot]); !math.IsNaN(f) {
					e.smooth(&st.err[c*nh+k], &st.scores[c*nh+k], (y-f)*(y-f))
				}
			}
		}
		off += h
	}
	// Score the Window totals made Window buckets ago, for Mix.Errors.
	slot := mod(bucket, w)
	if st.at[mod(bucket-int64(w), e.span)] == bucket-int64(w) && len(recent) >= w {
		var actual float64
		for _, y := range recent[len(recent)-w:] {
			actual += y
		}
		for c := range n + 1 {
			if f := st.total[c*w+slot]; !math.IsNaN(f) {
				mix.Errors[c] = math.Abs(actual - f)
			}
		}
	}

	// Record the new forecasts.
	st.at[mod(bucket, e.span)] = bucket
	if len(st.q) != n*nq {
		st.q = make([]float64, n*nq)
	}
	st.qAt = bucket
	for c, f := range fcs {
		off := 0
		for _, h := range hs {
			v := float32(math.NaN())
			if h <= len(f.Mean) {
				v = float32(f.Mean[h-1])
			}
			st.fc[c*e.ring+off+mod(bucket, h)] = v
			off += h
		}
		st.total[c*w+slot] = windowTotal(f.Mean, w)
		copy(st.q[c*nq:(c+1)*nq], f.Q[:nq])
	}

	e.weigh(st, eligible, &mix)
	clear(dst.Mean)
	for c, f := range fcs {
		if wt := mix.Weights[c]; wt > 0 {
			for h, m := range f.Mean {
				dst.Mean[h] += wt * m
			}
		}
	}
	copy(dst.Q, fcs[mix.Quantiles].Q)
	dst.Levels = fcs[mix.Quantiles].Levels
	st.total[n*w+slot] = windowTotal(dst.Mean, w)
	return mix
}

// weigh sets mix's weights, normalised to sum to 1, and quantile
// candidate from the scores in st and the candidates' eligibility.
func (e *Ensemble) weigh(st *EnsembleState, eligible []bool, mix *Mix) {
	n, nh := e.cfg.Candidates, len(e.cfg.Horizons)
	// Weigh the candidates: their mean squared errors first, then the
	// weights relative to the best, which takes weight 1, so that no scale
	// of sales overflows or underflows the powers.
	best, bestErr := -1, math.Inf(1)
	for c := range n {
		mix.Weights[c] = math.NaN()
		if !eligible[c] {
			continue
		}
		var mse float64
		ok := true
		for k := range nh {
			if st.scores[c*nh+k] < int32(e.cfg.MinScores) {
				ok = false
				break
			}
			mse += st.err[c*nh+k]
		}
		if !ok || math.IsNaN(mse) {
			continue
		}
		mix.Weights[c] = mse / float64(nh)
		if mix.Weights[c] < bestErr {
			best, bestErr = c, mix.Weights[c]
		}
	}
	var sum float64
	for c := range n {
		mse := mix.Weights[c]
		switch {
		case math.IsNaN(mse):
			mix.Weights[c] = 0
		case c == best || mse <= bestErr:
			mix.Weights[c] = 1
		case bestErr == 0:
			mix.Weights[c] = 0
		case e.cfg.Power == 4:
			r := bestErr / mse
			mix.Weights[c] = r * r
		default:
			mix.Weights[c] = math.Pow(bestErr/mse, e.cfg.Power/2)
		}
		sum += mix.Weights[c]
	}
	mix.Quantiles = best
	if sum == 0 {
		mix.Weights[e.cfg.Fallback], sum = 1, 1
		mix.Quantiles = e.cfg.Fallback
	} else {
		for c := range n {
			if eligible[c] && st.qScore[c] >= int32(e.cfg.MinScores) &&
				(st.qScore[mix.Quantiles] < int32(e.cfg.MinScores) || st.qErr[c] < st.qErr[mix.Quantiles]) {
				mix.Quantiles = c
			}
		}
	}
	for c := range n {
		mix.Weights[c] /= sum
	}
}

// windowTotal returns the sum of the first w means.
func windowTotal(mean []float64, w int) float64 {
	var t float64
	for _, m := range mean[:min(w, len(mean))] {
		t += m
	}
	return t
}

// Describe formats a mix for a forecast record's model_version: each
// candidate with a visible part (at least 0.5%) in the mean and its weight,
// then the candidate the quantiles came from.
func (m Mix) Describe(names []string) string { return string(m.AppendDescribe(nil, names)) }

// AppendDescribe appends Describe's text to b, for encoders that write it
// once per series.
func (m Mix) AppendDescribe(b []byte, names []string) []byte {
	b = append(b, "mean"...)
	for c, w := range m.Weights {
		if w >= 0.005 {
			b = append(b, ' ')
			b = append(b, names[c]...)
			b = append(b, ' ')
			b = strconv.AppendFloat(b, w, 'f', 2, 64)
		}
	}
	b = append(b, "; quantiles "...)
	return append(b, names[m.Quantiles]...)
}

// ensembleVersion is the encoding version of an EnsembleState. Version 1
// scored weekly totals and next-bucket quantiles instead of the steps at
// each horizon; it holds nothing version 2 can score with, so DecodeState
// refuses it with ErrEnsembleState and the caller starts the series
// afresh (it publishes the fallback until its candidates are scored
// again).
const ensembleVersion = 2

// ErrEnsembleState is returned, wrapped, for an EnsembleState encoding
// that cannot be read for this ensemble: another version, other
// candidates, window or horizons, or damaged bytes.
var ErrEnsembleState = errors.New("model: bad ensemble state encoding")

// AppendBinary appends the state's encoding to b. It never fails.
func (st *EnsembleState) AppendBinary(b []byte) ([]byte, error) {
	n := len(st.err) / len(st.hs)
	b = append(b, ensembleVersion, byte(n))
	b = binary.AppendUvarint(b, uint64(len(st.total)/(n+1)))
	b = binary.AppendUvarint(b, uint64(len(st.hs)))
	for _, h := range st.hs {
		b = binary.AppendUvarint(b, uint64(h))
	}
	b = binary.AppendUvarint(b, uint64(len(st.q)))
	for _, a := range st.at {
		b = binary.AppendVarint(b, a)
	}
	b = binary.AppendVarint(b, st.qAt)
	for _, vs := range [][]float64{st.total, st.err, st.q, st.qErr} {
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	for _, v := range st.fc {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, ns := range [][]int32{st.scores, st.qScore} {
		for _, n := range ns {
			b = binary.AppendUvarint(b, uint64(n))
		}
	}
	return b, nil
}

// DecodeState decodes a state encoded by AppendBinary for this ensemble's
// candidates, window and horizons.
func (e *Ensemble) DecodeState(b []byte) (*EnsembleState, error) {
	fail := func(what string) (*EnsembleState, error) {
		return nil, fmt.Errorf("%w: %s", ErrEnsembleState, what)
	}
	switch {
	case len(b) < 2:
		return fail("truncated")
	case b[0] != ensembleVersion:
		return fail(fmt.Sprintf("version %d, want %d", b[0], ensembleVersion))
	case int(b[1]) != e.cfg.Candidates:
		return fail(fmt.Sprintf("%d candidates, ensemble has %d", b[1], e.cfg.Candidates))
	}
	st := e.NewState()
	d := b[2:]
	uv := func() int {
		v, k := binary.Uvarint(d)
		if k <= 0 || v > math.MaxInt32 {
			d = nil
			return -1
		}
		d = d[k:]
		return int(v)
	}
	if uv() != e.cfg.Window {
		return fail("window differs")
	}
	if uv() != len(e.cfg.Horizons) {
		return fail("horizons differ")
	}
	for _, h := range e.cfg.Horizons {
		if uv() != h {
			return fail("horizons differ")
		}
	}
	nqs := uv()
	if nqs < 0 || nqs%e.cfg.Candidates != 0 || nqs > 64*e.cfg.Candidates {
		return fail("bad quantile count")
	}
	if nqs > 0 {
		st.q = make([]float64, nqs)
	}
	for i := range len(st.at) + 1 {
		v, k := binary.Varint(d)
		if k <= 0 {
			return fail("truncated")
		}
		if i < len(st.at) {
			st.at[i] = v
		} else {
			st.qAt = v
		}
		d = d[k:]
	}
	for _, vs := range [][]float64{st.total, st.err, st.q, st.qErr} {
		for i := range vs {
			if len(d) < 8 {
				return fail("truncated")
			}
			vs[i], d = math.Float64frombits(binary.LittleEndian.Uint64(d)), d[8:]
		}
	}
	for i := range st.fc {
		if len(d) < 4 {
			return fail("truncated")
		}
		st.fc[i], d = math.Float32frombits(binary.LittleEndian.Uint32(d)), d[4:]
	}
	for _, ns := range [][]int32{st.scores, st.qScore} {
		for i := range ns {
			v := uv()
			if v < 0 {
				return fail("truncated")
			}
			ns[i] = int32(v)
		}
	}
	if len(d) != 0 {
		return fail("trailing bytes")
	}
	return st, nil
}
