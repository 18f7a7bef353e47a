package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Config configures a forecaster. The zero value of each field means its
// default.
type Config struct {
	// Horizon is the number of buckets forecast. The default is 28.
	Horizon int
	// Levels are the quantile levels forecast, strictly increasing in (0, 1).
	// The default is 0.1, 0.5, 0.9.
	Levels []float64
}

// DefaultLevels are the quantile levels forecast when Config.Levels is empty.
var DefaultLevels = []float64{0.1, 0.5, 0.9}

// Validate fills in defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Horizon == 0 {
		c.Horizon = 28
	}
	if len(c.Levels) == 0 {
		c.Levels = slices.Clone(DefaultLevels)
	}
	if c.Horizon < 1 || c.Horizon > 10000 {
		return fmt.Errorf("model: Horizon %d outside [1, 10000]", c.Horizon)
	}
	for i, q := range c.Levels {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("model: quantile level %v outside (0, 1)", q)
		}
		if i > 0 && q <= c.Levels[i-1] {
			return fmt.Errorf("model: quantile levels %v are not strictly increasing", c.Levels)
		}
	}
	return nil
}

// Forecast is a multi-step forecast for one series: for each of H steps a
// mean and one value per quantile level. Values are never negative and the
// quantiles of a step never decrease with the level.
type Forecast struct {
	// Mean holds the point forecast of each step.
	Mean []float64
	// Q holds the quantiles row-major: the quantile at level j of step h is
	// Q[h*len(levels)+j].
	Q []float64
	// Levels are the quantile levels of Q. The slice is shared and must not
	// be modified.
	Levels []float64
}

// NewForecast returns a zero Forecast sized for cfg, which must be valid.
func NewForecast(cfg Config) *Forecast {
	return &Forecast{
		Mean:   make([]float64, cfg.Horizon),
		Q:      make([]float64, cfg.Horizon*len(cfg.Levels)),
		Levels: cfg.Levels,
	}
}

// Horizon returns the number of steps.
func (f *Forecast) Horizon() int { return len(f.Mean) }

// Quantile returns the quantile at level index j of step h.
func (f *Forecast) Quantile(h, j int) float64 { return f.Q[h*len(f.Levels)+j] }

// CopyFrom makes f a copy of g, reusing f's storage when it is large enough.
func (f *Forecast) CopyFrom(g *Forecast) {
	f.Mean = append(f.Mean[:0], g.Mean...)
	f.Q = append(f.Q[:0], g.Q...)
	f.Levels = g.Levels
}

// ErrInvalid is returned, wrapped, by Check for a forecast that breaks the
// Forecast invariants.
var ErrInvalid = errors.New("model: invalid forecast")

// Check verifies the Forecast invariants: finite, non-negative values and
// quantiles non-decreasing in the level.
func (f *Forecast) Check() error {
	nq := len(f.Levels)
	if len(f.Q) != len(f.Mean)*nq {
		return fmt.Errorf("%w: %d quantile values for %d steps of %d levels", ErrInvalid, len(f.Q), len(f.Mean), nq)
	}
	for h, m := range f.Mean {
		if !(m >= 0) || math.IsInf(m, 0) {
			return fmt.Errorf("%w: step %d mean %v", ErrInvalid, h, m)
		}
		for j := range nq {
			q := f.Q[h*nq+j]
			if !(q >= 0) || math.IsInf(q, 0) {
				return fmt.Errorf("%w: step %d quantile %v is %v", ErrInvalid, h, f.Levels[j], q)
			}
			if j > 0 && q < f.Q[h*nq+j-1] {
				return fmt.Errorf("%w: step %d quantiles cross at level %v", ErrInvalid, h, f.Levels[j])
			}
		}
	}
	return nil
}

// Input is the history of one series at a forecast origin, as plain values.
type Input struct {
	// Y holds the quantities of the series' most recent closed buckets,
	// oldest first; Y[len(Y)-1] is the origin bucket. It starts no earlier
	// than the series' first bucket. Y may be empty for a series with no
	// closed bucket.
	Y []float64
	// Price and Promo, when not nil, are aligned with Y: the mean unit
	// price of each bucket (0 when unknown) and the share of its events
	// under a promotion.
	Price, Promo []float32
	// Start is the bucket index of Y[0], so that bucket Start+i is Y[i] and
	// Start+len(Y)-1+h is forecast step h (1-based). Calendars take it.
	Start int64
	// Period is the seasonal period in buckets (7 for daily buckets).
	Period int
	// Key identifies the series across calls, for forecasters that keep
	// state per series between them (the LSTM carries its hidden state);
	// 0 means none, so the series is forecast from Y alone. A key must
	// never stand for another series over a forecaster's life.
	Key uint64
}

// Forecaster produces forecasts from a series' history. Implementations
// keep scratch space, so a Forecaster is not safe for concurrent use: give
// each goroutine its own.
type Forecaster interface {
	// Name identifies the model in forecast records and reports.
	Name() string
	// Forecast writes a forecast for in into dst, which must be sized for
	// the forecaster's Config (see NewForecast).
	Forecast(dst *Forecast, in *Input)
}

// BatchForecaster forecasts many series at once, as global models do: one
// call per bucket close with every series that closed it. Like Forecaster,
// it is not safe for concurrent use.
type BatchForecaster interface {
	// Name identifies the model in forecast records and reports.
	Name() string
	// ForecastBatch writes a forecast for in[i] into dst[i].
	ForecastBatch(dst []*Forecast, in []Input)
}

// Learner is a BatchForecaster that learns online. At each bucket close the
// pipeline calls Learn with the series that closed it, then ForecastBatch.
// Learners are found by name through NewLearner; the optional capabilities
// a pipeline looks for (Checkpointer, Carrier, Versioner) are the
// interfaces in learner.go.
type Learner interface {
	BatchForecaster
	// Learn trains on the examples that the histories in in complete: for
	// a model with input window L and horizon H, the H buckets ending at
	// the origin are the targets and the L before them the input. Series
	// with too little history are padded and masked or skipped, as the
	// model documents.
	Learn(in []Input) LearnStats
	// Steps returns the number of optimizer steps taken over the model's
	// life, checkpoints included: an ensemble waits for a young learner.
	Steps() int64
}

// LearnStats describe one Learn call.
type LearnStats struct {
	// Examples is the number of examples trained on.
	Examples int
	// Steps is the number of optimizer steps taken.
	Steps int
	// Skipped is the number of steps skipped because the loss or a
	// gradient was not finite; the model is unchanged by them.
	Skipped int
	// Loss is the mean training loss over the steps taken.
	Loss float64
}

// Calendar supplies known-in-advance covariates of a bucket, such as
// day-of-week encodings and event flags. A model calls its Calendar from
// the goroutine that owns the model; an implementation shared by several
// models must be safe for concurrent use.
type Calendar interface {
	// Width returns the number of covariates.
	Width() int
	// Covariates writes the covariates of the bucket with the given index
	// into dst[:Width()].
	Covariates(bucket int64, dst []float32)
}
