package pipeline

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// LatePolicy says what happens to an event whose bucket has already closed.
type LatePolicy string

// Late policies. Both count the event in the engine's Late counter.
const (
	// LateDeadLetter sends late events to the dead-letter sink.
	LateDeadLetter LatePolicy = "dlq"
	// LateDrop only counts them.
	LateDrop LatePolicy = "drop"
)

// NameAuto is the published forecaster that combines, per series,
// candidate forecasters by their recent accuracy (see model.Ensemble).
const NameAuto = "auto"

// Config configures a partition's engine. DefaultConfig is the one source
// of its defaults; start from it and change what differs. Zero values are
// taken literally where they mean something (no lateness, no series cap,
// no deduplication); fields whose zero means nothing say so.
type Config struct {
	// Window configures bucketing and features. A zero History means what
	// the forecasters need (see Forecasting.History).
	Window window.Config
	// Forecasting configures the forecasters and which one is published.
	Forecasting
	// Limits bound accepted events.
	Limits Limits
	// LatePolicy is what happens to late events.
	LatePolicy LatePolicy
	// DedupHorizon is how long, in event time, an event id is remembered
	// to drop its copies; zero remembers none. Ids and their records in
	// the store expire by event time only, as the watermark passes, so a
	// backlog read after a long downtime is deduplicated as it would have
	// been live. It must cover the longest bucket (see
	// window.Width.Longest): a copy arriving while its bucket is open must
	// be caught, and later copies are late anyway.
	DedupHorizon time.Duration
	// DedupMaxIDs caps the event ids a partition remembers; beyond it the
	// ids of the oldest event-time hours are forgotten early, so copies of
	// those arriving while their bucket is still open count again (see
	// Counters.Forgotten). About 40 to 55 bytes of memory per id. Zero
	// keeps every id of the horizon.
	DedupMaxIDs int
	// RetireAfter retires a series that has sold nothing for this long, in
	// event time, at a commit (see Engine.AppendState): its state, buckets,
	// latest forecast, ensemble scores and index entry are deleted
	// (tombstones in the changelog), and its next event, if any, starts it
	// afresh. Series in memory are judged as they close, evicted ones by a
	// sweep of the store of at most 512 series per commit. Zero keeps every
	// series.
	RetireAfter time.Duration
	// MaxSeries caps the series kept in memory; beyond it the least
	// recently updated hundredth is evicted to the store until their next
	// event, catching up on the buckets they missed as zeros. Zero keeps
	// every series. Only engines with a store (see Engine.Load) may cap.
	MaxSeries int
	// Decisions configures the trends and replenishment plans made at
	// every close; off by default.
	Decisions Decisions
	// Promotions configures the promotion lifts and the plans applied to
	// published forecasts; off by default.
	Promotions Promotions
	// FlatPct is the trend summary's band, in percent, within which a
	// change counts as flat.
	FlatPct float64
	// Clock returns the wall-clock time, for the future-time check and
	// the generated_at of forecast records. Nil means time.Now.
	Clock func() time.Time
}

// Forecasting configures the forecasters of every partition.
type Forecasting struct {
	// Model sets the horizon and quantile levels, which must include 0.1,
	// 0.5 and 0.9.
	Model model.Config
	// Published is the forecaster whose forecasts are published: a
	// baseline (see model.Baselines), a learner (see model.Learners), or
	// "auto", which publishes per series the candidates' means weighted by
	// their recent accuracy and the quantiles of the most accurate
	// candidate (see model.Ensemble).
	Published string
	// Candidates are auto's parts.
	Candidates []string
	// Fallback is the candidate auto publishes alone for a series, mean
	// and quantiles, while no eligible candidate has been scored enough on
	// it (see model.EnsembleConfig.MinScores).
	Fallback string
	// Also lists further forecasters to run, for backtests to evaluate.
	Also []string
	// Learner configures the learners that run.
	Learner model.LearnerConfig
	// LearnerMinSteps is how many optimizer steps a learner must have
	// taken before auto may use it.
	LearnerMinSteps int64
	// CheckpointEvery is how many bucket closes pass between checkpoints
	// of the learners into the partition's commit, at least 1; the last
	// commit before a partition is released checkpoints too.
	CheckpointEvery int
	// Calendar, when set, adds its daily event and SNAP flags to the
	// learners' calendar covariates.
	Calendar *DayFlags
}

// DayFlags are known-in-advance daily flags, such as the event and SNAP
// columns of an M5 calendar, from the date of First on.
type DayFlags struct {
	// First is the date of the first day.
	First time.Time
	// Event is true on days with a named event.
	Event []bool
	// SNAP maps a state ("TX") to its SNAP days.
	SNAP map[string][]bool
}

// DefaultConfig returns the defaults of run and backtests: daily buckets
// in UTC with an hour of lateness, the auto ensemble of the LSTM, ETS, TSB
// and the 28-bucket mean published (ETS, which suits smooth and
// intermittent series alike, alone until the candidates are scored), the event limits of DefaultLimits, event
// ids deduplicated over 48 hours of event time, at most 2,000,000 per
// partition, at most 100,000 series in memory per partition, and series
// retired after 180 days of event time without a sale.
func DefaultConfig() Config {
	return Config{
		Window: window.Config{Width: window.Day, Location: time.UTC, Lateness: time.Hour},
		Forecasting: Forecasting{
			Model:           model.Config{Horizon: 28, Levels: slices.Clone(model.DefaultLevels)},
			Published:       NameAuto,
			Candidates:      []string{model.NameLSTM, model.NameETS, model.NameTSB, model.NameMA28},
			Fallback:        model.NameETS,
			Learner:         model.DefaultLearnerConfig(),
			LearnerMinSteps: 50,
			CheckpointEvery: 1,
		},
		Limits:       DefaultLimits(),
		LatePolicy:   LateDeadLetter,
		DedupHorizon: 48 * time.Hour,
		DedupMaxIDs:  2_000_000,
		RetireAfter:  180 * 24 * time.Hour,
		MaxSeries:    100000,
		FlatPct:      5,
	}
}

// Validate checks the configuration and derives Window.History when it is
// zero. It returns an error naming the first invalid field and its value.
func (c *Config) Validate() error {
	if err := c.Forecasting.validate(); err != nil {
		return err
	}
	need := c.Forecasting.History()
	if c.Window.History == 0 {
		c.Window.History = need
	}
	switch {
	case c.Window.History < need:
		return fmt.Errorf("pipeline: Window.History %d is below the %d buckets the forecasters need", c.Window.History, need)
	case c.LatePolicy != LateDeadLetter && c.LatePolicy != LateDrop:
		return fmt.Errorf("pipeline: LatePolicy %q is not %q or %q", c.LatePolicy, LateDeadLetter, LateDrop)
	case c.DedupHorizon < 0:
		return fmt.Errorf("pipeline: DedupHorizon %v is negative", c.DedupHorizon)
	case c.DedupHorizon > 0 && c.DedupHorizon < c.Window.Width.Longest():
		return fmt.Errorf("pipeline: DedupHorizon %v is shorter than a %v bucket (up to %v): copies of an event in a bucket still open would count twice; set it to at least %v, or to 0 to turn deduplication off",
			c.DedupHorizon, c.Window.Width, c.Window.Width.Longest(), c.Window.Width.Longest())
	case c.DedupMaxIDs < 0:
		return fmt.Errorf("pipeline: DedupMaxIDs %d is negative", c.DedupMaxIDs)
	case c.RetireAfter < 0:
		return fmt.Errorf("pipeline: RetireAfter %v is negative", c.RetireAfter)
	case c.MaxSeries < 0:
		return fmt.Errorf("pipeline: MaxSeries %d is negative", c.MaxSeries)
	case !(c.FlatPct >= 0) || math.IsInf(c.FlatPct, 0):
		return fmt.Errorf("pipeline: FlatPct %v is not a non-negative number", c.FlatPct)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.Promotions.validate(); err != nil {
		return err
	}
	if err := c.Decisions.validate(c.Model.Horizon); err != nil {
		return err
	}
	_, err := window.NewPartition(c.Window)
	return err
}

// DedupTTL is how long, in wall-clock time, the store keeps a
// deduplication record at most: a backstop for records no event-time
// sweep reaches, such as those of a partition never assigned again.
// Records expire by event time (see DedupHorizon); a wall-clock expiry
// near the horizon would drop them during a downtime of a few days, and
// the backlog's copies would count twice. A year plus twice the horizon
// outlasts any downtime after which the backlog is still in Kafka.
func (c *Config) DedupTTL() time.Duration { return 2*c.DedupHorizon + 366*24*time.Hour }

func (c *Config) clock() func() time.Time {
	if c.Clock == nil {
		return time.Now
	}
	return c.Clock
}

// requiredLevels are the quantile levels every forecast record carries.
var requiredLevels = []float64{0.1, 0.5, 0.9}

func (f *Forecasting) validate() error {
	if err := f.Model.Validate(); err != nil {
		return err
	}
	for _, q := range requiredLevels {
		if !slices.Contains(f.Model.Levels, q) {
			return fmt.Errorf("pipeline: quantile levels %v lack the required level %v", f.Model.Levels, q)
		}
	}
	switch {
	case f.Published == "":
		return fmt.Errorf("pipeline: no published forecaster (have %v, %v and %s)", model.Baselines, model.Learners, NameAuto)
	case f.Published == NameAuto && len(f.Candidates) == 0:
		return fmt.Errorf("pipeline: %s has no candidates", NameAuto)
	case f.Published == NameAuto && !slices.Contains(f.Candidates, f.Fallback):
		return fmt.Errorf("pipeline: fallback %q is not among the candidates %v", f.Fallback, f.Candidates)
	case f.LearnerMinSteps < 0:
		return fmt.Errorf("pipeline: LearnerMinSteps %d is negative", f.LearnerMinSteps)
	case f.CheckpointEvery < 1:
		return fmt.Errorf("pipeline: CheckpointEvery %d is below 1", f.CheckpointEvery)
	}
	if _, err := f.Learner.WithDefaults(); err != nil {
		return err
	}
	for _, n := range f.Names() {
		if !slices.Contains(model.Baselines, n) && !model.IsLearner(n) {
			return fmt.Errorf("pipeline: unknown forecaster %q (have %v, %v and %s)", n, model.Baselines, model.Learners, NameAuto)
		}
	}
	return nil
}

// Names returns the forecasters to run, baselines in their report order,
// then the learners in theirs, then unknown names as given.
func (f *Forecasting) Names() []string {
	want := slices.Clone(f.Also)
	if f.Published == NameAuto {
		want = append(want, f.Candidates...)
	} else {
		want = append(want, f.Published)
	}
	var out []string
	for _, n := range slices.Concat(model.Baselines, model.Learners) {
		if slices.Contains(want, n) {
			out = append(out, n)
		}
	}
	for _, n := range want {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// History returns the closed buckets the forecasters need per series: the
// classical forecasters' window, or a learner's input window plus the
// horizon its targets span plus the 28 buckets its features look back.
func (f *Forecasting) History() int {
	h := baseWindow
	if slices.ContainsFunc(f.Names(), model.IsLearner) {
		lc, _ := f.Learner.WithDefaults() // its error is Validate's
		h = max(h, lc.Window+f.Model.Horizon+28)
	}
	return h
}

// baseWindow is the number of recent buckets the classical forecasters see.
const baseWindow = 84
