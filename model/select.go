package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// SelectorConfig configures a Selector. The zero value of each field means
// its default.
type SelectorConfig struct {
	// Candidates is the number of candidate forecasters. Required.
	Candidates int
	// Fallback is the candidate published until every eligible candidate
	// has been scored MinScores times.
	Fallback int
	// Window is the number of buckets whose total a forecast is scored on.
	// The default is 7.
	Window int
	// Alpha is the smoothing factor of the exponentially weighted squared
	// error. The default is 0.05.
	Alpha float64
	// MinScores is how many scores a candidate needs before it can be
	// chosen. The default is 14.
	MinScores int
}

// Selector publishes, for each series, the candidate forecaster whose
// recent forecasts were best for that series: every forecast's total over
// the next Window buckets is compared, once those buckets have closed, with
// their actual total, and the candidate with the smallest exponentially
// weighted squared error is chosen. Until the candidates have been scored
// enough, and for candidates the caller marks ineligible (a model that has
// not trained enough), the fallback is published. The per-series state is a
// Selection; a Selector itself is stateless and safe for concurrent use.
type Selector struct {
	cfg SelectorConfig
}

// NewSelector returns a Selector.
func NewSelector(cfg SelectorConfig) (*Selector, error) {
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
		return nil, fmt.Errorf("model: selector of %d candidates", cfg.Candidates)
	case cfg.Fallback < 0 || cfg.Fallback >= cfg.Candidates:
		return nil, fmt.Errorf("model: selector fallback %d outside [0, %d)", cfg.Fallback, cfg.Candidates)
	case cfg.Window < 1 || cfg.Window > 366:
		return nil, fmt.Errorf("model: selector window %d outside [1, 366]", cfg.Window)
	case !(cfg.Alpha > 0 && cfg.Alpha <= 1):
		return nil, fmt.Errorf("model: selector alpha %v outside (0, 1]", cfg.Alpha)
	case cfg.MinScores < 1:
		return nil, fmt.Errorf("model: selector MinScores %d is below 1", cfg.MinScores)
	}
	return &Selector{cfg: cfg}, nil
}

// Selection is a Selector's state for one series.
type Selection struct {
	total  []float64 // per candidate and slot: forecast total made at at[]
	at     []int64   // per slot: bucket the totals were made at
	err    []float64 // per candidate: weighted squared error
	scores []int32   // per candidate: number of scores
}

// NewSelection returns the state of a series no forecast was made for.
func (s *Selector) NewSelection() *Selection {
	w, n := s.cfg.Window, s.cfg.Candidates
	st := &Selection{
		total:  make([]float64, n*w),
		at:     make([]int64, w),
		err:    make([]float64, n),
		scores: make([]int32, n),
	}
	for i := range st.at {
		st.at[i] = math.MinInt64
	}
	return st
}

// Update is called at each close of a series' bucket with the series'
// recent actuals (ending at the closed bucket), the candidates' forecasts
// made at it (nil for a candidate that made none) and which candidates may
// be chosen. It scores the forecasts made Window buckets earlier, records
// the new ones and returns the candidate to publish.
func (s *Selector) Update(st *Selection, bucket int64, recent []float64, fcs []*Forecast, eligible []bool) int {
	w, n := s.cfg.Window, s.cfg.Candidates
	slot := int(((bucket % int64(w)) + int64(w)) % int64(w))
	if st.at[slot] == bucket-int64(w) && len(recent) >= w {
		var actual float64
		for _, y := range recent[len(recent)-w:] {
			actual += y
		}
		for c := range n {
			f := st.total[c*w+slot]
			if math.IsNaN(f) {
				continue
			}
			e := (actual - f) * (actual - f)
			if st.scores[c] == 0 {
				st.err[c] = e
			} else {
				st.err[c] += s.cfg.Alpha * (e - st.err[c])
			}
			st.scores[c]++
		}
	}
	st.at[slot] = bucket
	for c := range n {
		st.total[c*w+slot] = math.NaN()
		if c < len(fcs) && fcs[c] != nil {
			var t float64
			for _, m := range fcs[c].Mean[:min(w, len(fcs[c].Mean))] {
				t += m
			}
			st.total[c*w+slot] = t
		}
	}
	best := -1
	for c := range n {
		if !eligible[c] || st.scores[c] < int32(s.cfg.MinScores) {
			continue
		}
		if best < 0 || st.err[c] < st.err[best] {
			best = c
		}
	}
	if best < 0 {
		return s.cfg.Fallback
	}
	return best
}

// selectionVersion is the encoding version of a Selection.
const selectionVersion = 1

// ErrSelection is returned, wrapped, for a Selection encoding that cannot
// be read.
var ErrSelection = errors.New("model: bad selection encoding")

// AppendBinary appends the selection's encoding to b. It never fails.
func (st *Selection) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, selectionVersion, byte(len(st.err)))
	b = binary.AppendUvarint(b, uint64(len(st.at)))
	for _, a := range st.at {
		b = binary.AppendVarint(b, a)
	}
	for _, v := range st.total {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	for i, e := range st.err {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e))
		b = binary.AppendUvarint(b, uint64(st.scores[i]))
	}
	return b, nil
}

// DecodeSelection decodes a selection encoded by AppendBinary for this
// selector's candidates and window.
func (s *Selector) DecodeSelection(b []byte) (*Selection, error) {
	st := s.NewSelection()
	fail := func(what string) (*Selection, error) {
		return nil, fmt.Errorf("%w: %s", ErrSelection, what)
	}
	if len(b) < 2 || b[0] != selectionVersion {
		return fail("unknown version")
	}
	if int(b[1]) != s.cfg.Candidates {
		return fail(fmt.Sprintf("%d candidates, selector has %d", b[1], s.cfg.Candidates))
	}
	b = b[2:]
	w, k := binary.Uvarint(b)
	if k <= 0 || int(w) != s.cfg.Window {
		return fail("window differs")
	}
	b = b[k:]
	for i := range st.at {
		v, k := binary.Varint(b)
		if k <= 0 {
			return fail("truncated")
		}
		st.at[i], b = v, b[k:]
	}
	for i := range st.total {
		if len(b) < 8 {
			return fail("truncated")
		}
		st.total[i], b = math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
	}
	for i := range st.err {
		if len(b) < 8 {
			return fail("truncated")
		}
		st.err[i], b = math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return fail("truncated")
		}
		st.scores[i], b = int32(n), b[k:]
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	return st, nil
}
