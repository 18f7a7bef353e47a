package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/stream"
)

// addDecisionFlags adds the flags of the decisions made at every close,
// shared by run, demo and backtest, with the defaults of def (zero policy
// fields show decision's defaults).
func addDecisionFlags(fs *pflag.FlagSet, def pipeline.Decisions) {
	pol := def.Policy.WithDefaults()
	top := def.Top
	if top == 0 {
		top = 10
	}
	fs.Bool("decisions", def.On, "classify trends and plan replenishment at every close from the published forecast (see Decisions in the README)")
	fs.Int("lead-time", pol.LeadTime, "default lead time of the inventory policy, in buckets; lead time plus review period must fit in --horizon")
	fs.Int("review-period", pol.ReviewPeriod, "default review period of the inventory policy, in buckets")
	fs.Float64("service-level", pol.ServiceLevel, "default target cycle service level of the inventory policy, in (0, 1)")
	fs.Int("trending-top", top, "series per class and store a close's trends record ranks")
}

// addDecisionTopicFlags adds run's decision topic flags.
func addDecisionTopicFlags(fs *pflag.FlagSet, def stream.Config) {
	fs.String("trends-topic", def.TrendsTopic, "topic of the per-store trend rankings, with --decisions")
	fs.String("replenishment-topic", def.ReplenishmentTopic, "compacted topic of the per-series replenishment plans, with --decisions")
	fs.String("catalog-topic", def.CatalogTopic, "compacted topic of per-series inventory policies keyed STORE/SKU, with --decisions (empty: none)")
	fs.String("inventory-topic", def.InventoryTopic, "compacted topic of per-series stock positions keyed STORE/SKU, with --decisions (empty: none)")
}

// decisionsConfig reads the decision flags into d.
func decisionsConfig(v *viper.Viper, d pipeline.Decisions) (pipeline.Decisions, error) {
	d.On = v.GetBool("decisions")
	d.Top = v.GetInt("trending-top")
	d.Policy.LeadTime = v.GetInt("lead-time")
	d.Policy.ReviewPeriod = v.GetInt("review-period")
	d.Policy.ServiceLevel = v.GetFloat64("service-level")
	if d.Top < 1 {
		return d, fmt.Errorf("--trending-top %d is below 1", d.Top)
	}
	if err := d.Policy.WithDefaults().Validate(v.GetInt("horizon")); err != nil {
		return d, fmt.Errorf("--lead-time, --review-period, --service-level: %w", err)
	}
	return d, nil
}

// decisionPolicy is the default policy the flags set.
func decisionPolicy(v *viper.Viper) decision.Policy {
	return decision.Policy{LeadTime: v.GetInt("lead-time"), ReviewPeriod: v.GetInt("review-period"), ServiceLevel: v.GetFloat64("service-level")}.WithDefaults()
}
