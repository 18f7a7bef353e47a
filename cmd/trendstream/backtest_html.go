package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/model"
)

// writeHTMLReport writes the backtest as one self-contained HTML page in
// the console's style: the metrics tables, error by horizon and the same
// traces as the PNG plots, with every model's forecast.
func writeHTMLReport(path string, rep *report, res *backtest.Result, cfg backtest.Config) error {
	names := modelNames(res.Fixed)
	rows := func(ms map[string]model.Metrics) []console.MetricsRow {
		var out []console.MetricsRow
		for _, n := range append(slices.Clone(names), backtest.NamePublished) {
			m, ok := ms[n]
			if !ok {
				continue
			}
			out = append(out, console.MetricsRow{Model: n, MAE: m.MAE, RMSE: m.RMSE, Bias: m.Bias, RMSSE: m.RMSSE,
				WRMSSE: m.WRMSSE, SPL: m.SPL, WSPL: m.WSPL, Coverage80: m.Coverage80, Scored: m.SeriesScored})
		}
		return out
	}
	horizon := func(title string, ms map[string]model.Metrics) console.HorizonChart {
		h := console.HorizonChart{Title: title}
		for _, n := range names {
			e := console.ModelErrors{Model: n}
			for _, he := range ms[n].ByHorizon {
				e.Errors = append(e.Errors, he.MAE)
			}
			h.Models = append(h.Models, e)
		}
		return h
	}
	r := &console.Report{
		Title: "trendstream backtest",
		Summary: fmt.Sprintf("%d series over %d buckets of %s from %s, fixed origin %s, horizon %d; source %s.",
			rep.Dataset.Series, rep.Dataset.Days, rep.Dataset.Bucket, rep.Dataset.FirstDay, rep.Dataset.Origin, rep.Horizon, rep.Dataset.Source),
		Published: backtest.NamePublished,
		Horizon:   rep.Horizon,
		Tables: []console.MetricsTable{
			{Title: "Fixed origin", Rows: rows(res.Fixed)},
			{Title: fmt.Sprintf("Rolling, %d origins", cfg.Rolling), Rows: rows(res.Rolling)},
		},
		Horizons: []console.HorizonChart{
			horizon("MAE by horizon, fixed origin", res.Fixed),
			horizon(fmt.Sprintf("MAE by horizon, rolling over %d origins", cfg.Rolling), res.Rolling),
		},
		Extra:  decisionTables(res.Decisions),
		Footer: fmt.Sprintf("trendstream %s, seed %d, %d events, %d forecasts.", rep.Run.Version, rep.Run.Seed, rep.Run.Events, rep.Run.Forecasts),
	}
	for _, tr := range pickTraces(res.Traces) {
		ct := console.Trace{Series: tr.Series, History: tr.History, Actual: tr.Actual}
		for _, n := range append([]string{backtest.NamePublished}, names...) {
			if f := tr.Forecasts[n]; f != nil {
				ct.Forecasts = append(ct.Forecasts, traceForecast(n, f))
			}
		}
		r.Traces = append(r.Traces, ct)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := console.WriteReport(f, r); err != nil {
		f.Close()
		return fmt.Errorf("--html: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// traceForecast converts a forecast for the report, with its 10% and 90%
// quantiles when it has them.
func traceForecast(name string, f *model.Forecast) console.TraceForecast {
	tf := console.TraceForecast{Model: name, Mean: f.Mean}
	lo, hi := slices.Index(f.Levels, 0.1), slices.Index(f.Levels, 0.9)
	if lo < 0 || hi < 0 {
		return tf
	}
	for h := range f.Horizon() {
		tf.P10 = append(tf.P10, f.Quantile(h, lo))
		tf.P90 = append(tf.P90, f.Quantile(h, hi))
	}
	return tf
}
