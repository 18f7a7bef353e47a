package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/stream"
)

// promoKnown reads the promotion calendar of the backtest's input when
// --promo-known is set: a second pass over the events file, or a second
// generator with the same seed, before the replay.
func promoKnown(v *viper.Viper, cfg *backtest.Config) error {
	if !v.GetBool("promo-known") {
		return nil
	}
	var src source.Source
	switch path := v.GetString("events"); {
	case path != "":
		f, err := source.OpenFile(path)
		if err != nil {
			return fmt.Errorf("--promo-known: %w", err)
		}
		defer f.Close()
		src = f
	case v.GetBool("synthetic"):
		gen, err := source.NewSynthetic(synthConfig(v))
		if err != nil {
			return fmt.Errorf("--promo-known: %w", err)
		}
		src = gen
	default:
		return errors.New("--promo-known takes the plan from the input's promo column: it needs --events or --synthetic")
	}
	cal, err := backtest.ReadPromoCalendar(src, cfg.Config)
	if err != nil {
		return fmt.Errorf("--promo-known: %w", err)
	}
	cfg.PromoKnown = cal
	return nil
}

// promoSummary prints what the known promotion calendar brought.
func promoSummary(w io.Writer, p *backtest.Promotions) {
	if p == nil {
		return
	}
	fmt.Fprintln(w, "\npromotions known in advance (--promo-known): rolling WRMSSE of the published forecast")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tall steps\tpromotion steps\tother steps\tforecasts\ton promotion days\t")
	for _, r := range []struct {
		name string
		a    backtest.PromoAccuracy
	}{{"without plan", p.Plain}, {"with plan", p.Planned}} {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%d\t%d\t\n", r.name, r.a.WRMSSE, r.a.PromoWRMSSE, r.a.OtherWRMSSE, r.a.Forecasts, r.a.PromoForecasts)
	}
	fmt.Fprintf(tw, "gain\t%.1f%%\t%.1f%%\t\t\t\t\n", 100*p.OverallGain, 100*p.PromoGain)
	tw.Flush()
	l := p.Lifts
	fmt.Fprintf(w, "estimated lifts of %d series with at least %.0f promotions: geometric mean %.3f, p10 %.3f, median %.3f, p90 %.3f; pooled %.3f\n",
		l.Series, l.MinPromotions, l.Geomean, l.P10, l.Median, l.P90, l.Pooled)
}

// addPromoFlags adds the promotion flags shared by run, demo and backtest,
// with the defaults of def (zero estimator fields show model's defaults).
func addPromoFlags(fs *pflag.FlagSet, def pipeline.Promotions) {
	lc := def.Lift.WithDefaults()
	fs.Bool("promotions", def.On, "estimate every series' promotion lift at each close and publish forecasts under the plans of --plans-topic (see Promotion what-if in the README); backtest's --promo-known turns it on")
	fs.Float64("promo-half-life", lc.HalfLife, "observations of a weekday (a season's slot) after which one's weight in a series' promotion and non-promotion levels has halved")
	fs.Float64("promo-prior", lc.Prior, "weight, in promotion buckets, of the partition's pooled lift in a series' lift")
}

// promotionsConfig reads the promotion flags into d.
func promotionsConfig(v *viper.Viper, d pipeline.Promotions) (pipeline.Promotions, error) {
	d.On = v.GetBool("promotions")
	d.Lift.HalfLife = v.GetFloat64("promo-half-life")
	d.Lift.Prior = v.GetFloat64("promo-prior")
	if err := d.Lift.Validate(); err != nil {
		return d, fmt.Errorf("--promo-half-life, --promo-prior: %w", err)
	}
	return d, nil
}

// addPlansTopicFlag adds run's plans topic flag.
func addPlansTopicFlag(fs *pflag.FlagSet, def stream.Config) {
	fs.String("plans-topic", def.PlansTopic, "compacted topic of per-series promotion plans keyed STORE/SKU, with --promotions (empty: none)")
}
