package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// EvalConfig configures an Evaluator.
type EvalConfig struct {
	// Models names the models whose forecasts are evaluated, in the order
	// Forecast receives them.
	Models []string
	// Horizon is the number of steps of each forecast.
	Horizon int
	// Levels are the forecasts' quantile levels; they must include 0.1,
	// 0.5 and 0.9.
	Levels []float64
	// Origin is the bucket index of the fixed origin T. Every step whose
	// actual arrives is scored: for M5 data the 28 test days.
	Origin int64
	// Rolling is the number of origins of the rolling evaluation, ending
	// at Origin. The default is 112.
	Rolling int
	// WeightWindow is the number of buckets, ending at an origin, whose
	// units weigh a series in wrmsse and wspl. The default is 28.
	WeightWindow int
}

// Metrics are the accuracy measures of one model over one evaluation, as
// defined in the backtest protocol.
type Metrics struct {
	MAE          float64 `json:"mae"`
	RMSE         float64 `json:"rmse"`
	Bias         float64 `json:"bias"`
	RMSSE        float64 `json:"rmsse"`
	WRMSSE       float64 `json:"wrmsse"`
	SPL          float64 `json:"spl"`
	WSPL         float64 `json:"wspl"`
	Coverage80   float64 `json:"coverage80"`
	SeriesScored int     `json:"series_scored"`
	// Forecasts is the number of (series, origin) pairs evaluated and
	// Points the number of (series, origin, step) errors.
	Forecasts int `json:"forecasts"`
	Points    int `json:"points"`
	// ByHorizon holds the MAE and RMSE of each step, 1-based order.
	ByHorizon []HorizonError `json:"by_horizon"`
	// Calibration is the share of actuals at or below each quantile.
	Calibration map[string]float64 `json:"calibration"`
}

// HorizonError is the error of one forecast step.
type HorizonError struct {
	MAE  float64 `json:"mae"`
	RMSE float64 `json:"rmse"`
	N    int     `json:"n"`
}

// evalSeries is what the evaluator keeps per series.
type evalSeries struct {
	n       int     // buckets observed since the first
	last    float64 // last observed value
	sumSq   float64 // sum of squared first differences
	sumAbs  float64 // sum of absolute first differences
	recent  []float64
	pending []pendingForecast
}

// pendingForecast is a forecast waiting for its actuals.
type pendingForecast struct {
	origin      int64
	scaleSq     float64 // mean squared first difference of the history
	scaleAbs    float64 // mean absolute first difference of the history
	weight      float64
	steps       int       // steps to score
	values      []float32 // per model, per step: mean and one per level
	actual      []float64 // actuals received so far
	fixed, roll bool
}

// accum sums one model's errors over one evaluation.
type accum struct {
	absErr, sqErr, bias float64
	points, covered     int
	forecasts           int
	rmsse, wrmsse, wr   float64 // sum of RMSSE, weighted sum, weight
	spl, wspl           float64
	scored              int
	series              map[int]bool // scored series of this evaluator
	merged              int          // scored series of merged evaluators
	hAbs, hSq           []float64
	hN                  []int
	below               []int // per level: actuals at or below the quantile
}

// Evaluator scores forecasts against the actuals that follow them, as the
// backtest protocol defines: a fixed-origin evaluation at Origin and a
// rolling one over the origins before it, with MAE, RMSE, bias, (weighted)
// RMSSE and SPL and 80% coverage. It streams: Observe feeds each closed
// bucket, Forecast each forecast, and only forecasts still waiting for
// actuals are kept. An Evaluator is not safe for concurrent use.
type Evaluator struct {
	cfg            EvalConfig
	nq             int
	i10, i50, i90  int
	series         []evalSeries
	fixed, rolling []accum
}

// NewEvaluator returns an Evaluator.
func NewEvaluator(cfg EvalConfig) (*Evaluator, error) {
	if cfg.Rolling == 0 {
		cfg.Rolling = 112
	}
	if cfg.WeightWindow == 0 {
		cfg.WeightWindow = 28
	}
	e := &Evaluator{cfg: cfg, nq: len(cfg.Levels)}
	e.i10, e.i50, e.i90 = slices.Index(cfg.Levels, 0.1), slices.Index(cfg.Levels, 0.5), slices.Index(cfg.Levels, 0.9)
	switch {
	case len(cfg.Models) == 0:
		return nil, errors.New("model: an Evaluator needs models")
	case cfg.Horizon < 1:
		return nil, fmt.Errorf("model: Horizon %d is below 1", cfg.Horizon)
	case e.i10 < 0 || e.i50 < 0 || e.i90 < 0:
		return nil, fmt.Errorf("model: quantile levels %v lack 0.1, 0.5 or 0.9", cfg.Levels)
	case cfg.Rolling < 1 || cfg.WeightWindow < 1:
		return nil, fmt.Errorf("model: Rolling %d, WeightWindow %d", cfg.Rolling, cfg.WeightWindow)
	}
	e.fixed = e.newAccums()
	e.rolling = e.newAccums()
	return e, nil
}

func (e *Evaluator) newAccums() []accum {
	a := make([]accum, len(e.cfg.Models))
	for i := range a {
		a[i] = accum{series: map[int]bool{}, hAbs: make([]float64, e.cfg.Horizon),
			hSq: make([]float64, e.cfg.Horizon), hN: make([]int, e.cfg.Horizon), below: make([]int, e.nq)}
	}
	return a
}

// Evaluated reports whether a forecast at origin is scored, so callers can
// skip making the others.
func (e *Evaluator) Evaluated(origin int64) bool {
	return origin <= e.cfg.Origin && origin > e.cfg.Origin-int64(e.cfg.Rolling)
}

func (e *Evaluator) get(id int) *evalSeries {
	for id >= len(e.series) {
		e.series = append(e.series, evalSeries{})
	}
	return &e.series[id]
}

// Observe feeds the value y of a closed bucket of series id (a dense index
// chosen by the caller), in bucket order from the series' first bucket.
func (e *Evaluator) Observe(id int, y float64) {
	s := e.get(id)
	if s.n > 0 {
		d := y - s.last
		s.sumSq += d * d
		s.sumAbs += math.Abs(d)
	}
	s.n++
	s.last = y
	s.recent = append(s.recent, y)
	if len(s.recent) > e.cfg.WeightWindow {
		s.recent = s.recent[1:]
	}
	keep := s.pending[:0]
	for i := range s.pending {
		p := &s.pending[i]
		p.actual = append(p.actual, y)
		if len(p.actual) == p.steps {
			e.score(id, p)
			continue
		}
		keep = append(keep, *p)
	}
	clear(s.pending[len(keep):])
	s.pending = keep
}

// Forecast registers the forecasts of series id made at origin, the last
// bucket Observe has fed for it, one per model in EvalConfig.Models order.
// Forecasts at origins that are not evaluated are ignored.
func (e *Evaluator) Forecast(id int, origin int64, fcs []*Forecast) {
	if !e.Evaluated(origin) {
		return
	}
	s := e.get(id)
	p := pendingForecast{origin: origin, fixed: origin == e.cfg.Origin, roll: true, steps: e.cfg.Horizon}
	if s.n > 1 {
		p.scaleSq = s.sumSq / float64(s.n-1)
		p.scaleAbs = s.sumAbs / float64(s.n-1)
	}
	for _, v := range s.recent {
		p.weight += v
	}
	stride := e.cfg.Horizon * (1 + e.nq)
	p.values = make([]float32, len(fcs)*stride)
	for m, f := range fcs {
		row := p.values[m*stride:]
		for h := range e.cfg.Horizon {
			row[h*(1+e.nq)] = float32(f.Mean[h])
			for j := range e.nq {
				row[h*(1+e.nq)+1+j] = float32(f.Q[h*e.nq+j])
			}
		}
	}
	s.pending = append(s.pending, p)
}

// Finish scores the forecasts still waiting with the actuals they have:
// call it after the last bucket.
func (e *Evaluator) Finish() {
	for id := range e.series {
		s := &e.series[id]
		for i := range s.pending {
			if len(s.pending[i].actual) > 0 {
				e.score(id, &s.pending[i])
			}
		}
		s.pending = nil
	}
}

// score adds a completed forecast to the accumulators.
func (e *Evaluator) score(id int, p *pendingForecast) {
	if p.fixed {
		e.scoreInto(e.fixed, id, p)
	}
	if p.roll {
		e.scoreInto(e.rolling, id, p)
	}
}

func (e *Evaluator) scoreInto(acc []accum, id int, p *pendingForecast) {
	stride := e.cfg.Horizon * (1 + e.nq)
	h := len(p.actual)
	for m := range acc {
		a := &acc[m]
		row := p.values[m*stride:]
		var sq, pin float64
		for k, y := range p.actual {
			v := row[k*(1+e.nq):]
			mean := float64(v[0])
			err := y - mean
			sq += err * err
			a.absErr += math.Abs(err)
			a.sqErr += err * err
			a.bias += mean - y
			a.hAbs[k] += math.Abs(err)
			a.hSq[k] += err * err
			a.hN[k]++
			q := v[1:]
			if float64(q[e.i10]) <= y && y <= float64(q[e.i90]) {
				a.covered++
			}
			for j, level := range e.cfg.Levels {
				if y <= float64(q[j]) {
					a.below[j]++
				}
				if j == e.i10 || j == e.i50 || j == e.i90 {
					pin += Pinball(level, y, float64(q[j]))
				}
			}
		}
		a.points += h
		a.forecasts++
		if p.scaleSq > 0 && p.scaleAbs > 0 {
			rmsse := math.Sqrt(sq / float64(h) / p.scaleSq)
			spl := pin / 3 / float64(h) / p.scaleAbs
			a.rmsse += rmsse
			a.spl += spl
			a.wrmsse += p.weight * rmsse
			a.wspl += p.weight * spl
			a.wr += p.weight
			a.scored++
			a.series[id] = true
		}
	}
}

// Merge adds the scores of o, an evaluator of other series (another
// partition's), to e. Call Finish on o first: its waiting forecasts are
// not merged.
func (e *Evaluator) Merge(o *Evaluator) error {
	if !slices.Equal(e.cfg.Models, o.cfg.Models) || e.cfg.Horizon != o.cfg.Horizon || !slices.Equal(e.cfg.Levels, o.cfg.Levels) {
		return errors.New("model: merging evaluators of different models, horizons or levels")
	}
	for i := range e.fixed {
		e.fixed[i].add(&o.fixed[i])
		e.rolling[i].add(&o.rolling[i])
	}
	return nil
}

func (a *accum) add(o *accum) {
	a.absErr += o.absErr
	a.sqErr += o.sqErr
	a.bias += o.bias
	a.points += o.points
	a.covered += o.covered
	a.forecasts += o.forecasts
	a.rmsse += o.rmsse
	a.wrmsse += o.wrmsse
	a.wr += o.wr
	a.spl += o.spl
	a.wspl += o.wspl
	a.scored += o.scored
	a.merged += len(o.series) + o.merged
	for k := range a.hN {
		a.hAbs[k] += o.hAbs[k]
		a.hSq[k] += o.hSq[k]
		a.hN[k] += o.hN[k]
	}
	for j := range a.below {
		a.below[j] += o.below[j]
	}
}

// Pinball is the pinball (quantile) loss of predicting p for y at level q.
func Pinball(q, y, p float64) float64 {
	if y >= p {
		return q * (y - p)
	}
	return (1 - q) * (p - y)
}

// Result returns the metrics of every model, fixed origin then rolling,
// keyed by model name.
func (e *Evaluator) Result() (fixed, rolling map[string]Metrics) {
	return e.metrics(e.fixed), e.metrics(e.rolling)
}

func (e *Evaluator) metrics(acc []accum) map[string]Metrics {
	out := make(map[string]Metrics, len(acc))
	for m, a := range acc {
		r := Metrics{SeriesScored: len(a.series) + a.merged, Forecasts: a.forecasts, Points: a.points,
			Calibration: map[string]float64{}}
		if a.points > 0 {
			n := float64(a.points)
			r.MAE, r.RMSE, r.Bias = a.absErr/n, math.Sqrt(a.sqErr/n), a.bias/n
			r.Coverage80 = float64(a.covered) / n
			for j, level := range e.cfg.Levels {
				r.Calibration[fmt.Sprint(level)] = float64(a.below[j]) / n
			}
		}
		if a.scored > 0 {
			r.RMSSE, r.SPL = a.rmsse/float64(a.scored), a.spl/float64(a.scored)
		}
		if a.wr > 0 {
			r.WRMSSE, r.WSPL = a.wrmsse/a.wr, a.wspl/a.wr
		}
		for k := range a.hN {
			if a.hN[k] == 0 {
				continue
			}
			n := float64(a.hN[k])
			r.ByHorizon = append(r.ByHorizon, HorizonError{MAE: a.hAbs[k] / n, RMSE: math.Sqrt(a.hSq[k] / n), N: a.hN[k]})
		}
		out[e.cfg.Models[m]] = r
	}
	return out
}
