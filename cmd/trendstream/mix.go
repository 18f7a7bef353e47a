package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/pipeline"
)

// addMixFlags adds the flags of the mixing of learners across partitions,
// shared by run and backtest, with the defaults of def.
func addMixFlags(fs *pflag.FlagSet, def pipeline.MixConfig) {
	fs.Int("learner-mix-every", def.Every, "buckets per round in which every partition's learners mix in the weights of the other partitions' (0: each partition learns alone)")
	fs.Float64("learner-mix-gain", def.Gain, "gain of a mixing round on the step from the previous round's weights (0 or 1: plain averaging)")
}

// mixConfig reads the mixing flags.
func mixConfig(v *viper.Viper) (pipeline.MixConfig, error) {
	c := pipeline.MixConfig{Every: v.GetInt("learner-mix-every"), Gain: v.GetFloat64("learner-mix-gain")}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("--learner-mix-every/--learner-mix-gain: %w", err)
	}
	return c, nil
}
