package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/window"
)

// addProcessingFlags adds the windowing and forecasting flags shared by
// run, demo and backtest, with the defaults of def.
func addProcessingFlags(fs *pflag.FlagSet, def pipeline.Config) {
	f, l := def.Forecasting, def.Learner
	fs.String("bucket", def.Window.Width.String(), "bucket width: 1h, 1d or 1w")
	fs.String("timezone", def.Window.Location.String(), "IANA time zone buckets align to")
	fs.Duration("lateness", def.Window.Lateness, "allowed lateness: the watermark trails the newest event time by this much (0: none)")
	fs.Int("history", def.Window.History, "closed buckets kept per series, at least 28; 0 keeps what the forecasters need (84, or 112 with a learner)")
	fs.Int("horizon", f.Model.Horizon, "buckets forecast")
	fs.String("quantiles", formatFloats(f.Model.Levels), "comma-separated quantile levels; must include 0.1, 0.5 and 0.9")
	fs.String("model", f.Published, fmt.Sprintf("published forecaster: %s (per series, the candidates' means weighted by their recent errors to the power -%v and the quantiles of the most accurate), a learner (%s) or a baseline (%s)",
		pipeline.NameAuto, model.DefaultEnsemblePower, strings.Join(model.Learners, ", "), strings.Join(model.Baselines, ", ")))
	fs.String("candidates", strings.Join(f.Candidates, ","), "comma-separated forecasters auto combines")
	fs.String("fallback", f.Fallback, fmt.Sprintf("candidate auto publishes alone (mean and quantiles) for a series until an eligible candidate has %d scored forecasts at each of %s steps ahead (those within --horizon)",
		model.DefaultEnsembleMinScores, formatInts(model.DefaultEnsembleHorizons)))
	fs.Int("learner-layers", l.Layers, "learner layers (1 or 2)")
	fs.Int("learner-hidden", l.Hidden, "learner hidden units per layer")
	fs.Int("learner-window", l.Window, "learner input window in buckets")
	fs.Float64("learner-lr", l.LearningRate, "learner Adam learning rate")
	fs.Int("learner-minibatch", l.MiniBatch, "learner examples per optimizer step")
	fs.Int("learner-min-batches", l.MinBatches, "least number of minibatches, one optimizer step each, a learner splits a close's examples into (more when --learner-minibatch asks)")
	fs.Int("learner-decay-steps", l.DecaySteps, "optimizer steps after which a learner's learning rate decays as the inverse square root of the step count (0: constant)")
	fs.Int("learner-epochs", l.StepsPerClose, "learner passes over the examples of each bucket close")
	fs.Int("learner-replay", l.Replay, "earlier windows of each series, drawn from the last 28 closes' examples, a learner trains on at each close besides the newest (0: the newest only)")
	fs.Uint64("learner-seed", l.Seed, "learner initialization and shuffling seed")
	fs.Int64("learner-min-steps", f.LearnerMinSteps, "optimizer steps a learner takes before auto may use it")
	fs.Float64("learner-average", l.Average, "decay per optimizer step of the moving average of a learner's weights that forecasts use, in [0, 1) (0: the latest weights)")
	fs.Int("learner-refresh", l.Refresh, "buckets between full runs of a series' learner window; in between a forecast steps the carried state (1: always full)")
	fs.String("calendar", "", "M5-format calendar.csv whose event and SNAP flags the learners see")
	addDecisionFlags(fs, def.Decisions)
	addPromoFlags(fs, def.Promotions)
}

func formatFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

// formatInts formats v as "1, 2, 4 and 7".
func formatInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// pipelineConfig reads the processing flags into def.
func pipelineConfig(v *viper.Viper, def pipeline.Config) (pipeline.Config, error) {
	c := def
	var err error
	if c.Window, err = windowConfig(v, c.Window); err != nil {
		return c, err
	}
	if c.Forecasting, err = forecastingConfig(v, c.Forecasting); err != nil {
		return c, err
	}
	if c.Decisions, err = decisionsConfig(v, c.Decisions); err != nil {
		return c, err
	}
	if c.Promotions, err = promotionsConfig(v, c.Promotions); err != nil {
		return c, err
	}
	return c, nil
}

// windowConfig reads the bucketing flags into w.
func windowConfig(v *viper.Viper, w window.Config) (window.Config, error) {
	var err error
	if w.Width, err = window.ParseWidth(v.GetString("bucket")); err != nil {
		return w, fmt.Errorf("--bucket: %w", err)
	}
	if w.Location, err = time.LoadLocation(v.GetString("timezone")); err != nil {
		return w, fmt.Errorf("--timezone: %w", err)
	}
	w.Lateness, w.History = v.GetDuration("lateness"), v.GetInt("history")
	return w, nil
}

// forecastingConfig reads the forecasting flags into f.
func forecastingConfig(v *viper.Viper, f pipeline.Forecasting) (pipeline.Forecasting, error) {
	var err error
	if f.Model, err = modelConfig(v); err != nil {
		return f, err
	}
	avg := v.GetFloat64("learner-average")
	if !(avg >= 0 && avg < 1) {
		return f, fmt.Errorf("--learner-average %v outside [0, 1)", avg)
	}
	f.Published = v.GetString("model")
	f.Candidates = splitList(v.GetString("candidates"))
	f.Fallback = v.GetString("fallback")
	f.LearnerMinSteps = v.GetInt64("learner-min-steps")
	f.Learner.Layers = v.GetInt("learner-layers")
	f.Learner.Hidden = v.GetInt("learner-hidden")
	f.Learner.Window = v.GetInt("learner-window")
	f.Learner.LearningRate = v.GetFloat64("learner-lr")
	f.Learner.MiniBatch = v.GetInt("learner-minibatch")
	f.Learner.StepsPerClose = v.GetInt("learner-epochs")
	f.Learner.DecaySteps = v.GetInt("learner-decay-steps")
	f.Learner.MinBatches = v.GetInt("learner-min-batches")
	f.Learner.Replay = v.GetInt("learner-replay")
	f.Learner.Refresh = v.GetInt("learner-refresh")
	f.Learner.Average = avg
	f.Learner.Seed = v.GetUint64("learner-seed")
	if path := v.GetString("calendar"); path != "" {
		cal, first, err := source.ReadM5Calendar(path)
		if err != nil {
			return f, fmt.Errorf("--calendar: %w", err)
		}
		f.Calendar = dayFlags(cal, first)
	}
	return f, nil
}

// dayFlags turns an M5 calendar starting at first into the learners'
// day flags.
func dayFlags(cal *source.M5Calendar, first time.Time) *pipeline.DayFlags {
	return &pipeline.DayFlags{First: first, Event: cal.Event, SNAP: cal.SNAP}
}

// modelConfig reads the horizon and quantile flags.
func modelConfig(v *viper.Viper) (model.Config, error) {
	var levels []float64
	for _, s := range splitList(v.GetString("quantiles")) {
		q, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return model.Config{}, fmt.Errorf("--quantiles: %w", err)
		}
		levels = append(levels, q)
	}
	cfg := model.Config{Horizon: v.GetInt("horizon"), Levels: levels}
	if cfg.Horizon < 1 {
		return cfg, fmt.Errorf("--horizon %d is below 1", cfg.Horizon)
	}
	return cfg, cfg.Validate()
}
