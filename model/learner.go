package model

import (
	"encoding"
	"fmt"
	"math"
	"slices"
)

// Checkpointer is a learner whose trained state survives restarts: the
// pipeline stores MarshalBinary's bytes in a partition's commit and hands
// them to UnmarshalBinary when the partition is loaded again. A checkpoint
// the configured model cannot read must be an error, never a silent reset.
type Checkpointer interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// Carrier is a learner that keeps state per series between calls, keyed by
// Input.Key (the LSTM carries each series' hidden state from one close to
// the next). Forget drops the state of a series that left memory.
type Carrier interface {
	Forget(key uint64)
}

// Versioner is a forecaster that reports a version for the model_version
// of forecast records, such as its architecture and training progress.
// Forecasters without one are version "1".
type Versioner interface {
	Version() string
}

// Version returns f's version: its Version method's, or "1".
func Version(f any) string {
	if v, ok := f.(Versioner); ok {
		return v.Version()
	}
	return "1"
}

// learners maps every learner's name to its constructor, in report order.
// A new learner is one type and one line here.
var learners = []struct {
	name string
	new  func(LearnerConfig, Config) (Learner, error)
}{
	{NameLSTM, func(c LearnerConfig, m Config) (Learner, error) { return NewLSTM(c, m) }},
	{NameGRU, func(c LearnerConfig, m Config) (Learner, error) { return NewGRU(c, m) }},
	{NameTransformer, func(c LearnerConfig, m Config) (Learner, error) { return NewTransformer(c, m) }},
}

// Learners lists the learners NewLearner knows, in report order.
var Learners = learnerNames()

func learnerNames() []string {
	names := make([]string, len(learners))
	for i, l := range learners {
		names[i] = l.name
	}
	return names
}

// IsLearner reports whether name is a learner NewLearner knows.
func IsLearner(name string) bool { return slices.Contains(Learners, name) }

// NewLearner returns the learner with the given name, freshly initialised
// for the horizon and quantile levels of mcfg.
func NewLearner(name string, cfg LearnerConfig, mcfg Config) (Learner, error) {
	for _, l := range learners {
		if l.name == name {
			return l.new(cfg, mcfg)
		}
	}
	return nil, fmt.Errorf("model: unknown learner %q (have %v)", name, Learners)
}

// LearnerConfig configures a global neural learner (see Learners). Every
// learner reads the fields that apply to its architecture. Start from
// DefaultLearnerConfig: WithDefaults fills in the zero fields for which
// zero is not a valid value, but WeightDecay and Average keep zero as
// "off".
type LearnerConfig struct {
	// Layers is the number of stacked layers (recurrent layers or
	// Transformer blocks), 1 or 2. The default is 2.
	Layers int
	// Hidden is the number of hidden units per layer (the model width of
	// a Transformer), at most 1024. The default is 32 (the README's
	// backtest tables compare sizes).
	Hidden int
	// Heads is the number of attention heads of a Transformer, a divisor
	// of Hidden. The default is the smallest number of heads whose width
	// Hidden/Heads is at most 16: 2 heads of 16 at the default Hidden 32,
	// 4 of 16 at 64, 4 of 10 at 40. Heads of 8 to 16 dimensions are
	// wide enough for the dot products to rank positions and still let
	// several heads attend to different lags.
	Heads int
	// Window is the number of input buckets L. Shorter histories are
	// left-padded. The default is 56.
	Window int
	// MiniBatch is the largest number of examples per optimizer step, at
	// most 65536. The default is 512: one step per close for partitions of
	// up to 512 series.
	MiniBatch int
	// MinBatches is the least number of minibatches each pass over the
	// examples of a Learn call is split into (all of them when there are
	// fewer examples), so a partition with few series still takes several
	// optimizer steps per close; MiniBatch may call for more. The default
	// is 1.
	MinBatches int
	// StepsPerClose is the number of passes over the examples of each
	// Learn call, each reshuffled and split into minibatches. The
	// default is 1.
	StepsPerClose int
	// Replay is the number of earlier windows of each series that a Learn
	// call trains on besides the one its close completes, at most
	// ReplayDepth. They form a replay buffer of the examples of the last
	// ReplayDepth closes, rebuilt from the series' histories rather than
	// stored: each is the example that completed k buckets earlier, with
	// the k of each series drawn without repetition from [1, ReplayDepth]
	// by the model's seeded generator (checkpointed), so a restart
	// replays identically. A series replays only the windows its history
	// holds (see Learn). 0 trains on the newest example of each series
	// only, once per pass.
	Replay int
	// LearningRate is Adam's step size. The default is 3e-3.
	LearningRate float64
	// DecaySteps, when positive, makes the learning rate decay with the
	// inverse square root of the optimizer step t once t passes it:
	// LearningRate·sqrt(DecaySteps/t), so early steps move fast from the
	// initial weights and later ones less. The step count is the
	// optimizer's, checkpointed with the weights. 0 keeps the rate
	// constant, the default.
	DecaySteps int
	// Beta1 and Beta2 are Adam's moment decay rates, in [0, 1). The
	// defaults are 0.9 and 0.999.
	Beta1, Beta2 float64
	// Eps is Adam's denominator guard. The default is 1e-8.
	Eps float64
	// WeightDecay is the decoupled (AdamW) weight decay of the weight
	// matrices, at least 0; biases are not decayed. 0 disables decay;
	// DefaultLearnerConfig sets 1e-4.
	WeightDecay float64
	// ClipNorm is the largest global gradient norm; larger gradients are
	// scaled down to it. The default is 1; +Inf disables clipping.
	ClipNorm float64
	// Refresh is the number of buckets between full runs of a series'
	// input window when a recurrent learner (LSTM, GRU) forecasts, at
	// most 1000. In between, the forecast of a series whose window
	// advanced by one bucket takes one recurrent step from the state its
	// previous forecast left (a 56th of the recurrent work at L = 56), with
	// the scale and mean price of its last full run. 1 runs every window
	// in full. The default is 7.
	Refresh int
	// Average is the decay per optimizer step of the exponential moving
	// average of the weights that forecasts use (Polyak averaging), in
	// [0, 1); training always continues from the latest weights. The
	// decay ramps up as in TensorFlow's ExponentialMovingAverage with a
	// step count: after step t it is min(Average, (1+t)/(10+t)), so while
	// the model is young the average spans about the last tenth of its
	// steps and lags little behind fast learning. The average starts at
	// the initial weights. 0 disables averaging: forecasts use the latest
	// weights. DefaultLearnerConfig sets 0.995 (the last few hundred steps
	// once past about 1,800).
	Average float64
	// Seed seeds the initial weights and the minibatch shuffling. The
	// default is 1.
	Seed uint64
	// Calendar supplies known-in-advance covariates of each bucket. When
	// nil, the model uses sin and cos of the bucket's phase in the input's
	// seasonal period instead.
	Calendar Calendar
}

// Limits of LearnerConfig fields.
const (
	learnerMaxHidden    = 1024
	learnerMaxWindow    = 10000
	learnerMaxMiniBatch = 1 << 16
	learnerMaxSteps     = 1000
	learnerMaxCalendar  = 1024
	learnerMaxRefresh   = 1000
)

// rate returns the learning rate of optimizer step t, counted from 1 (see
// DecaySteps).
func (c *LearnerConfig) rate(t int64) float64 {
	if c.DecaySteps <= 0 || t <= int64(c.DecaySteps) {
		return c.LearningRate
	}
	return c.LearningRate * math.Sqrt(float64(c.DecaySteps)/float64(t))
}

// ReplayDepth is the number of past closes whose examples Replay draws
// from. The features of a window look back up to 28 buckets before it (the
// buckets since the last sale), so the history a learner needs for its
// newest example (Window + horizon + 28 buckets) also holds the windows
// of the 28 closes before, only with a shorter look-back; a deeper replay
// would need every series to keep a longer history.
const ReplayDepth = gapCap

// DefaultLearnerConfig returns the default configuration: the defaults
// WithDefaults fills in, weight decay 1e-4 and weight averaging 0.995.
func DefaultLearnerConfig() LearnerConfig {
	c, _ := LearnerConfig{WeightDecay: 1e-4, Average: 0.995}.WithDefaults()
	return c
}

// WithDefaults returns c with defaults filled in, or an error naming the
// first invalid field.
func (c LearnerConfig) WithDefaults() (LearnerConfig, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Layers, 2)
	def(&c.Hidden, 32)
	if c.Heads == 0 && c.Hidden > 0 {
		c.Heads = (c.Hidden + 15) / 16
		for c.Hidden%c.Heads != 0 {
			c.Heads++
		}
	}
	def(&c.Window, 56)
	def(&c.MiniBatch, 512)
	def(&c.StepsPerClose, 1)
	def(&c.MinBatches, 1)
	def(&c.Refresh, 7)
	deff(&c.LearningRate, 3e-3)
	deff(&c.Beta1, 0.9)
	deff(&c.Beta2, 0.999)
	deff(&c.Eps, 1e-8)
	deff(&c.ClipNorm, 1)
	if c.Seed == 0 {
		c.Seed = 1
	}
	irange := []struct {
		name   string
		v, max int
		lo     int
	}{
		{"Layers", c.Layers, 2, 1},
		{"Hidden", c.Hidden, learnerMaxHidden, 1},
		{"Window", c.Window, learnerMaxWindow, 1},
		{"MiniBatch", c.MiniBatch, learnerMaxMiniBatch, 1},
		{"StepsPerClose", c.StepsPerClose, learnerMaxSteps, 1},
		{"MinBatches", c.MinBatches, learnerMaxSteps, 1},
		{"DecaySteps", c.DecaySteps, math.MaxInt32, 0},
		{"Refresh", c.Refresh, learnerMaxRefresh, 1},
		{"Replay", c.Replay, ReplayDepth, 0},
	}
	for _, f := range irange {
		if f.v < f.lo || f.v > f.max {
			return c, fmt.Errorf("model: LearnerConfig.%s %d outside [%d, %d]", f.name, f.v, f.lo, f.max)
		}
	}
	if c.Heads < 1 || c.Hidden%c.Heads != 0 {
		return c, fmt.Errorf("model: LearnerConfig.Heads %d does not divide Hidden %d", c.Heads, c.Hidden)
	}
	switch {
	case !(c.LearningRate > 0) || math.IsInf(c.LearningRate, 0):
		return c, fmt.Errorf("model: LearnerConfig.LearningRate %v is not a positive finite number", c.LearningRate)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return c, fmt.Errorf("model: LearnerConfig.Beta1 %v outside [0, 1)", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return c, fmt.Errorf("model: LearnerConfig.Beta2 %v outside [0, 1)", c.Beta2)
	case !(c.Eps > 0) || math.IsInf(c.Eps, 0):
		return c, fmt.Errorf("model: LearnerConfig.Eps %v is not a positive finite number", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return c, fmt.Errorf("model: LearnerConfig.WeightDecay %v is not a finite number of at least 0", c.WeightDecay)
	case !(c.ClipNorm > 0):
		return c, fmt.Errorf("model: LearnerConfig.ClipNorm %v is not positive", c.ClipNorm)
	case !(c.Average >= 0 && c.Average < 1):
		return c, fmt.Errorf("model: LearnerConfig.Average %v outside [0, 1)", c.Average)
	}
	if c.Calendar != nil {
		if w := c.Calendar.Width(); w < 0 || w > learnerMaxCalendar {
			return c, fmt.Errorf("model: LearnerConfig.Calendar width %d outside [0, %d]", w, learnerMaxCalendar)
		}
	}
	return c, nil
}
