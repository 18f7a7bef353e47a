package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
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

// openSynthetic makes the synthetic generator the replay's source, with
// its truth for the trend classes' scores, and, unless --origin says
// otherwise, the origin a horizon before its last day.
func openSynthetic(v *viper.Viper, cfg *backtest.Config, in *replayInput) error {
	sc := synthConfig(v)
	start, days := sc.Start, sc.Days
	if days < 1 {
		return fmt.Errorf("--days %d: --synthetic needs a finite number of days", days)
	}
	gen, err := source.NewSynthetic(sc)
	if err != nil {
		return fmt.Errorf("--synthetic: %w", err)
	}
	if cfg.Origin.IsZero() {
		cfg.Origin = start.AddDate(0, 0, days-1-cfg.Model.Horizon)
	}
	cfg.Truth = &backtest.Truth{Items: gen.Truth(), Start: start}
	in.src, in.name = gen, fmt.Sprintf("synthetic:seed=%d,stores=%d,skus=%d,days=%d", v.GetUint64("seed"), v.GetInt("stores"), v.GetInt("skus"), days)
	return nil
}

// synthConfig returns the synthetic generator's configuration the
// backtest's flags give.
func synthConfig(v *viper.Viper) source.SynthConfig {
	return source.SynthConfig{Stores: v.GetInt("stores"), SKUs: v.GetInt("skus"),
		Seed: v.GetUint64("seed"), Days: v.GetInt("days"), Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// decisionsSummary prints the achieved service levels and, when the
// truth was known, the trend classes' precision and recall.
func decisionsSummary(w io.Writer, d *backtest.Decisions) {
	if d == nil {
		return
	}
	fmt.Fprintf(w, "\nreplenishment (lead time %d, review period %d, %s), plans from the published forecast at the rolling origins\n",
		d.LeadTime, d.ReviewPeriod, d.Method)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tcycle service\tlead-time service\tsafety stock\tof cycle demand\tplans\t")
	for _, s := range d.ServiceLevels {
		fmt.Fprintf(tw, "%.2f\t%.3f\t%.3f\t%.2f\t%.0f%%\t%d\t\n", s.Target, s.Cycle, s.Lead, s.SafetyStock, 100*s.SafetyShare, s.Plans)
	}
	tw.Flush()
	if d.Trends == nil {
		return
	}
	fmt.Fprintln(w, "\ntrend classes against the generator's truth, at the rolling origins")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tprecision\tflags\trecall\tdetected\tepisodes\t")
	for _, q := range d.Trends {
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%.2f\t%d\t%d\t\n", q.Class, q.Precision, q.Flags, q.Recall, q.Detected, q.Episodes)
	}
	tw.Flush()
}

// decisionTables are the HTML report's tables of the decisions: service
// level by target and, with the truth, the trend classes' precision and
// recall.
func decisionTables(d *backtest.Decisions) []console.TextTable {
	if d == nil {
		return nil
	}
	sl := console.TextTable{Title: "Replenishment: service level by target",
		Caption: fmt.Sprintf("Plans from the published forecast at the rolling origins; lead time %d, review period %d, method %s.", d.LeadTime, d.ReviewPeriod, d.Method),
		Head:    []string{"Target", "Cycle service level", "Lead-time service level", "Mean safety stock", "Of cycle demand", "Plans"}}
	for _, s := range d.ServiceLevels {
		sl.Rows = append(sl.Rows, []string{fmt.Sprintf("%.2f", s.Target), fmt.Sprintf("%.3f", s.Cycle), fmt.Sprintf("%.3f", s.Lead),
			fmt.Sprintf("%.2f", s.SafetyStock), fmt.Sprintf("%.0f%%", 100*s.SafetyShare), fmt.Sprint(s.Plans)})
	}
	out := []console.TextTable{sl}
	if d.Trends != nil {
		tr := console.TextTable{Title: "Trend detection against the generator's truth",
			Caption: "Precision: flagged series-days the truth supports; recall: the truth's episodes flagged.",
			Head:    []string{"Class", "Precision", "Flags", "Recall", "Detected", "Episodes"}}
		for _, q := range d.Trends {
			tr.Rows = append(tr.Rows, []string{q.Class, fmt.Sprintf("%.2f", q.Precision), fmt.Sprint(q.Flags),
				fmt.Sprintf("%.2f", q.Recall), fmt.Sprint(q.Detected), fmt.Sprint(q.Episodes)})
		}
		out = append(out, tr)
	}
	return out
}

// namedPlot is a chart and the file it is saved as.
type namedPlot struct {
	file string
	plot *plot.Plot
}

// decisionPlots charts the achieved service level against the target
// and, with the truth, each trend class's precision and recall.
func decisionPlots(d *backtest.Decisions) ([]namedPlot, error) {
	if d == nil {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Replenishment: achieved service level by target (lead time %d, review period %d)", d.LeadTime, d.ReviewPeriod)
	p.X.Label.Text = "target"
	p.Y.Label.Text = "achieved"
	lo := 1.0
	var cycle, lead plotter.XYs
	for _, s := range d.ServiceLevels {
		cycle = append(cycle, plotter.XY{X: s.Target, Y: s.Cycle})
		lead = append(lead, plotter.XY{X: s.Target, Y: s.Lead})
		lo = min(lo, s.Target, s.Cycle, s.Lead)
	}
	diag, err := plotter.NewLine(plotter.XYs{{X: lo - 0.01, Y: lo - 0.01}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(diag)
	if err := addLine(p, "cycle", cycle, 0); err != nil {
		return nil, err
	}
	if err := addLine(p, "lead time", lead, 1); err != nil {
		return nil, err
	}
	p.Legend.Left = true
	out := []namedPlot{{"service_level.png", p}}
	if d.Trends == nil {
		return out, nil
	}
	p = plot.New()
	p.Title.Text = "Trend detection against the generator's truth"
	p.Y.Label.Text = "share"
	p.Y.Min, p.Y.Max = 0, 1.15 // room for the legend
	var precision, recall plotter.Values
	var names []string
	for _, q := range d.Trends {
		precision, recall = append(precision, q.Precision), append(recall, q.Recall)
		names = append(names, q.Class)
	}
	w := vg.Points(18)
	for i, v := range []plotter.Values{precision, recall} {
		bars, err := plotter.NewBarChart(v, w)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(2*i-1) / 2
		p.Add(bars)
		p.Legend.Add([]string{"precision", "recall"}[i], bars)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	return append(out, namedPlot{"trend_detection.png", p}), nil
}
