package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// EnsembleConfig configures an Ensemble. The zero value of each field
// means its default.
type EnsembleConfig struct {
	// Candidates is the number of candidate forecasters. Required.
	Candidates int
	// Fallback is the candidate published alone until the candidates have
	// been scored MinScores times.
	Fallback int
	// Window is the number of buckets whose total scores a mean forecast.
	// The default is 7.
	Window int
	// Alpha is the smoothing factor of the exponentially weighted errors.
	// The default is 0.05.
	Alpha float64
	// MinScores is how many scores a candidate needs to take part. The
	// default is 14.
	MinScores int
}

// Ensemble combines, for each series, the forecasts of candidate
// forecasters by their recent accuracy on that series:
//
//   - the mean is the average of the candidates' means weighted by the
//     inverse of their exponentially weighted squared error on the total of
//     the next Window buckets (each forecast is scored once those buckets
//     have closed);
//   - the quantiles are those of the candidate with the least exponentially
//     weighted pinball loss on the next bucket, so a band comes from one
//     model and stays calibrated.
//
// Candidates the caller marks ineligible (a model that has not trained
// enough) and candidates not yet scored MinScores times take no part;
// until one may, the fallback is published alone. The per-series state is
// an EnsembleState; an Ensemble itself is stateless and safe for concurrent
// use.
type Ensemble struct {
	cfg EnsembleConfig
}

// NewEnsemble returns an Ensemble.
func NewEnsemble(cfg EnsembleConfig) (*Ensemble, error) {
	if cfg.Window == 0 {
		cfg.Window = 7
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = 0.05
	}
	if cfg.MinScores == 0 {
		cfg.MinScores = 14
	}
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
	}
	return &Ensemble{cfg: cfg}, nil
}

// EnsembleState is an Ensemble's state for one series.
type EnsembleState struct {
	total   []float64 // per candidate, then the combination, and slot: forecast total made at at[]
	at      []int64   // per slot: bucket the totals were made at
	err     []float64 // per candidate: weighted squared error of totals
	scores  []int32   // per candidate: number of total scores
	q       []float64 // per candidate: next-bucket quantiles made at qAt
	qAt     int64
	qErr    []float64 // per candidate: weighted pinball loss
	qScores []int32
}

// Mix says how an Ensemble combined a series' forecasts.
type Mix struct {
	// Weights holds each candidate's weight in the mean. The slice is
	// reused by the next Update.
	Weights []float64
	// Quantiles is the candidate whose quantiles were published.
	Quantiles int
	// Errors holds, when this update scored the forecasts made Window
	// buckets earlier, the absolute error of each candidate's total and
	// then of the combined mean's total; NaN where nothing was scored. The
	// slice is reused by the next Update.
	Errors []float64
}

// NewState returns the state of a series no forecast was made for.
func (e *Ensemble) NewState() *EnsembleState {
	w, n := e.cfg.Window, e.cfg.Candidates
	st := &EnsembleState{
		total:   make([]float64, (n+1)*w),
		at:      make([]int64, w),
		err:     make([]float64, n),
		scores:  make([]int32, n),
		qAt:     math.MinInt64,
		qErr:    make([]float64, n),
		qScores: make([]int32, n),
	}
	for i := range st.at {
		st.at[i] = math.MinInt64
	}
	return st
}

func (e *Ensemble) smooth(v *float64, n *int32, x float64) {
	if *n == 0 {
		*v = x
	} else {
		*v += e.cfg.Alpha * (x - *v)
	}
	*n++
}

// Update is called at each close of a series' bucket with the series'
// recent actuals (ending at the closed bucket), the candidates' forecasts
// made at it and which candidates may take part. It scores the forecasts
// that came due, records the new ones and writes the combined forecast to
// dst, which must be sized like the candidates' forecasts. scratch must
// hold at least 2·Candidates+1 values; the Mix's slices live in it.
func (e *Ensemble) Update(st *EnsembleState, bucket int64, recent []float64, fcs []*Forecast, eligible []bool, dst *Forecast, scratch []float64) Mix {
	w, n := e.cfg.Window, e.cfg.Candidates
	mix := Mix{Weights: scratch[:n], Errors: scratch[n : 2*n+1], Quantiles: -1}
	for i := range mix.Errors {
		mix.Errors[i] = math.NaN()
	}
	nq := len(fcs[0].Levels)
	if len(recent) > 0 && st.qAt == bucket-1 {
		y := recent[len(recent)-1]
		for c := range n {
			var loss float64
			for j, q := range fcs[0].Levels {
				loss += Pinball(q, y, st.q[c*nq+j])
			}
			e.smooth(&st.qErr[c], &st.qScores[c], loss)
		}
	}
	slot := int(((bucket % int64(w)) + int64(w)) % int64(w))
	if st.at[slot] == bucket-int64(w) && len(recent) >= w {
		var actual float64
		for _, y := range recent[len(recent)-w:] {
			actual += y
		}
		for c := range n + 1 {
			f := st.total[c*w+slot]
			if math.IsNaN(f) {
				continue
			}
			mix.Errors[c] = math.Abs(actual - f)
			if c < n {
				e.smooth(&st.err[c], &st.scores[c], (actual-f)*(actual-f))
			}
		}
	}
	st.at[slot] = bucket
	if len(st.q) != n*nq {
		st.q = make([]float64, n*nq)
	}
	st.qAt = bucket
	for c, f := range fcs {
		var t float64
		for _, m := range f.Mean[:min(w, len(f.Mean))] {
			t += m
		}
		st.total[c*w+slot] = t
		copy(st.q[c*nq:(c+1)*nq], f.Q[:nq])
	}

	var sum float64
	for c := range n {
		mix.Weights[c] = 0
		if eligible[c] && st.scores[c] >= int32(e.cfg.MinScores) {
			mix.Weights[c] = 1 / (st.err[c] + 1e-9)
			sum += mix.Weights[c]
		}
		if eligible[c] && st.qScores[c] >= int32(e.cfg.MinScores) &&
			(mix.Quantiles < 0 || st.qErr[c] < st.qErr[mix.Quantiles]) {
			mix.Quantiles = c
		}
	}
	if sum == 0 {
		mix.Weights[e.cfg.Fallback], sum = 1, 1
	}
	if mix.Quantiles < 0 {
		mix.Quantiles = e.cfg.Fallback
	}
	clear(dst.Mean)
	for c, f := range fcs {
		if wt := mix.Weights[c] / sum; wt > 0 {
			mix.Weights[c] = wt
			for h, m := range f.Mean {
				dst.Mean[h] += wt * m
			}
		}
	}
	copy(dst.Q, fcs[mix.Quantiles].Q)
	dst.Levels = fcs[mix.Quantiles].Levels
	var t float64
	for _, m := range dst.Mean[:min(w, len(dst.Mean))] {
		t += m
	}
	st.total[n*w+slot] = t
	return mix
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

// ensembleVersion is the encoding version of an EnsembleState.
const ensembleVersion = 1

// ErrEnsembleState is returned, wrapped, for an EnsembleState encoding
// that cannot be read for this ensemble.
var ErrEnsembleState = errors.New("model: bad ensemble state encoding")

// AppendBinary appends the state's encoding to b. It never fails.
func (st *EnsembleState) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, ensembleVersion, byte(len(st.err)))
	b = binary.AppendUvarint(b, uint64(len(st.at)))
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
	for _, ns := range [][]int32{st.scores, st.qScores} {
		for _, n := range ns {
			b = binary.AppendUvarint(b, uint64(n))
		}
	}
	return b, nil
}

// DecodeState decodes a state encoded by AppendBinary for this ensemble's
// candidates and window.
func (e *Ensemble) DecodeState(b []byte) (*EnsembleState, error) {
	fail := func(what string) (*EnsembleState, error) {
		return nil, fmt.Errorf("%w: %s", ErrEnsembleState, what)
	}
	if len(b) < 2 || b[0] != ensembleVersion {
		return fail("unknown version")
	}
	if int(b[1]) != e.cfg.Candidates {
		return fail(fmt.Sprintf("%d candidates, ensemble has %d", b[1], e.cfg.Candidates))
	}
	st := e.NewState()
	d := b[2:]
	uv := func() int {
		v, k := binary.Uvarint(d)
		if k <= 0 {
			d = nil
			return -1
		}
		d = d[k:]
		return int(v)
	}
	if uv() != e.cfg.Window {
		return fail("window differs")
	}
	nqs := uv()
	if nqs < 0 || nqs%e.cfg.Candidates != 0 || nqs > 64*e.cfg.Candidates {
		return fail("bad quantile count")
	}
	st.q = make([]float64, nqs)
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
	for _, ns := range [][]int32{st.scores, st.qScores} {
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
