package main

import (
	"cmp"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/model"
)

// writePlots writes the backtest's charts to dir as PNG files: error by
// horizon for every model (fixed origin and rolling), interval calibration,
// and forecast against actual with the 10-90% band for the highest-volume
// series and the three highest-volume intermittent ones. It returns the
// files written.
func writePlots(dir string, res *backtest.Result, cfg backtest.Config) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	save := func(p *plot.Plot, name string) error {
		path := filepath.Join(dir, name)
		if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		files = append(files, path)
		return nil
	}
	names := modelNames(res.Fixed)
	for _, ev := range []struct {
		file, title string
		ms          map[string]model.Metrics
	}{
		{"error_by_horizon_fixed.png", "MAE by horizon, fixed origin", res.Fixed},
		{"error_by_horizon_rolling.png", fmt.Sprintf("MAE by horizon, rolling over %d origins", cfg.Rolling), res.Rolling},
	} {
		p := plot.New()
		p.Title.Text = ev.title
		p.X.Label.Text = "steps ahead"
		p.Y.Label.Text = "MAE (units)"
		for i, n := range names {
			pts := make(plotter.XYs, len(ev.ms[n].ByHorizon))
			for h, e := range ev.ms[n].ByHorizon {
				pts[h] = plotter.XY{X: float64(h + 1), Y: e.MAE}
			}
			if err := addLine(p, n, pts, i); err != nil {
				return nil, err
			}
		}
		if err := save(p, ev.file); err != nil {
			return nil, err
		}
	}

	p := plot.New()
	p.Title.Text = "Interval calibration, rolling: share of actuals at or below each quantile"
	p.X.Label.Text = "quantile level"
	p.Y.Label.Text = "observed share"
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(diag)
	for i, n := range names {
		var pts plotter.XYs
		for _, q := range cfg.Model.Levels {
			pts = append(pts, plotter.XY{X: q, Y: res.Rolling[n].Calibration[fmt.Sprint(q)]})
		}
		if err := addLine(p, n, pts, i); err != nil {
			return nil, err
		}
	}
	p.Legend.Left = true
	if err := save(p, "calibration.png"); err != nil {
		return nil, err
	}
	charts, err := decisionPlots(res.Decisions)
	if err != nil {
		return nil, err
	}
	for _, c := range charts {
		if err := save(c.plot, c.file); err != nil {
			return nil, err
		}
	}

	for _, tr := range pickTraces(res.Traces) {
		p, err := tracePlot(tr, backtest.NamePublished)
		if err != nil {
			return nil, err
		}
		if err := save(p, "series_"+strings.NewReplacer("/", "_", " ", "_").Replace(tr.Series)+".png"); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// modelNames lists models in report order, "published" last.
func modelNames(ms map[string]model.Metrics) []string {
	var names []string
	for n := range ms {
		if n != backtest.NamePublished {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, i int) error {
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	p.Legend.Top = true
	return nil
}

// pickTraces returns the highest-volume series and the three highest-volume
// intermittent ones (at least half their history zero).
func pickTraces(traces []backtest.Trace) []backtest.Trace {
	volume := func(tr backtest.Trace) float64 {
		var v float64
		for _, y := range tr.History {
			v += y
		}
		return v
	}
	sorted := slices.Clone(traces)
	slices.SortStableFunc(sorted, func(a, b backtest.Trace) int { return cmp.Compare(volume(b), volume(a)) })
	var out []backtest.Trace
	if len(sorted) > 0 {
		out = append(out, sorted[0])
	}
	for _, tr := range sorted[min(1, len(sorted)):] {
		zeros := 0
		for _, y := range tr.History {
			if y == 0 {
				zeros++
			}
		}
		if len(out) < 4 && len(tr.History) > 0 && 2*zeros >= len(tr.History) && volume(tr) > 0 {
			out = append(out, tr)
		}
	}
	return out
}

// tracePlot draws a series' history, the actuals after the origin and the
// published forecast with its 10-90% band.
func tracePlot(tr backtest.Trace, published string) (*plot.Plot, error) {
	f := tr.Forecasts[published]
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s forecast at the fixed origin (step 0)", tr.Series, published)
	p.X.Label.Text = "buckets from the origin"
	p.Y.Label.Text = "units"
	n := len(tr.History)
	hist := make(plotter.XYs, n)
	for i, y := range tr.History {
		hist[i] = plotter.XY{X: float64(i - n + 1), Y: y}
	}
	actual := make(plotter.XYs, len(tr.Actual))
	for i, y := range tr.Actual {
		actual[i] = plotter.XY{X: float64(i + 1), Y: y}
	}
	mean := make(plotter.XYs, f.Horizon())
	band := make(plotter.XYs, 0, 2*f.Horizon())
	lo, hi := slices.Index(f.Levels, 0.1), slices.Index(f.Levels, 0.9)
	for h := range f.Horizon() {
		mean[h] = plotter.XY{X: float64(h + 1), Y: f.Mean[h]}
		band = append(band, plotter.XY{X: float64(h + 1), Y: f.Quantile(h, lo)})
	}
	for h := f.Horizon() - 1; h >= 0; h-- {
		band = append(band, plotter.XY{X: float64(h + 1), Y: f.Quantile(h, hi)})
	}
	poly, err := plotter.NewPolygon(band)
	if err != nil {
		return nil, err
	}
	poly.Color = color.NRGBA{R: 70, G: 130, B: 180, A: 90}
	poly.LineStyle.Width = 0
	p.Add(poly)
	p.Legend.Add("p10-p90", poly)
	for i, l := range []struct {
		name string
		pts  plotter.XYs
	}{{"history", hist}, {"actual", actual}, {"forecast mean", mean}} {
		if len(l.pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(l.pts)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		p.Add(line)
		p.Legend.Add(l.name, line)
	}
	p.Legend.Top = true
	return p, nil
}
