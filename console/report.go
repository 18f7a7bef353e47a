package console

import (
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"strconv"
)

// Report is a backtest report: what WriteReport draws into one
// self-contained HTML page.
type Report struct {
	// Title heads the page; Summary is a sentence under it saying what was
	// replayed.
	Title, Summary string
	// Published names the model whose forecasts run publishes; its rows
	// and lines are marked.
	Published string
	// Horizon is the number of buckets forecast.
	Horizon int
	// Tables hold the metrics, such as fixed origin and rolling.
	Tables []MetricsTable
	// Horizons chart each model's error by step ahead, one chart each.
	Horizons []HorizonChart
	// Traces are series around the fixed origin.
	Traces []Trace
	// Extra are further tables drawn after the metrics, such as the
	// decisions' service levels.
	Extra []TextTable
	// Footer is a line of provenance: version, seed, wall time.
	Footer string
}

// TextTable is a table of preformatted cells under a title and a caption.
type TextTable struct {
	Title, Caption string
	// Head names the columns; each row has as many cells, the first a
	// row heading.
	Head []string
	Rows [][]string
}

// MetricsTable is one table of models x metrics.
type MetricsTable struct {
	Title string
	Rows  []MetricsRow
}

// MetricsRow is one model's metrics.
type MetricsRow struct {
	Model                                                 string
	MAE, RMSE, Bias, RMSSE, WRMSSE, SPL, WSPL, Coverage80 float64
	Scored                                                int
}

// HorizonChart is one chart of error by step ahead.
type HorizonChart struct {
	Title string
	// Errors maps a model to its error at steps 1, 2, ...
	Models []ModelErrors
}

// ModelErrors is one model's error by step ahead.
type ModelErrors struct {
	Model  string
	Errors []float64
}

// Trace is one series around the fixed origin.
type Trace struct {
	// Series is the series id.
	Series string
	// History holds the buckets up to and including the origin; Actual
	// those after it.
	History, Actual []float64
	// Forecasts are each model's forecast made at the origin.
	Forecasts []TraceForecast
}

// TraceForecast is one model's forecast in a Trace. P10 and P90 may be
// nil; the published model's band is drawn.
type TraceForecast struct {
	Model          string
	Mean, P10, P90 []float64
}

// reportColumns are the metrics columns, with the function ranking a
// value (smaller is better).
var reportColumns = []struct {
	Name string
	get  func(MetricsRow) float64
	rank func(float64) float64
}{
	{"MAE", func(r MetricsRow) float64 { return r.MAE }, ident},
	{"RMSE", func(r MetricsRow) float64 { return r.RMSE }, ident},
	{"Bias", func(r MetricsRow) float64 { return r.Bias }, math.Abs},
	{"RMSSE", func(r MetricsRow) float64 { return r.RMSSE }, ident},
	{"WRMSSE", func(r MetricsRow) float64 { return r.WRMSSE }, ident},
	{"SPL", func(r MetricsRow) float64 { return r.SPL }, ident},
	{"WSPL", func(r MetricsRow) float64 { return r.WSPL }, ident},
	{"Coverage80", func(r MetricsRow) float64 { return r.Coverage80 }, func(v float64) float64 { return math.Abs(v - 0.8) }},
}

func ident(v float64) float64 { return v }

type reportView struct {
	*Report
	CSS    template.CSS
	Tables []tableView
	Charts []chartView
}

type tableView struct {
	Title   string
	Columns []string
	Rows    []rowView
}

type rowView struct {
	Model     string
	Published bool
	Cells     []cellView
	Scored    int
}

type cellView struct {
	Value string
	Best  bool
}

type chartView struct {
	Heading      string
	Wide, Narrow svgChart
	Legend       []line
}

// WriteReport writes r as one HTML page with its style inline and its
// charts as inline SVG: no script, nothing fetched, so it opens anywhere.
func WriteReport(w io.Writer, r *Report) error {
	css, err := fs.ReadFile(static, "style.css")
	if err != nil {
		return err
	}
	v := reportView{Report: r, CSS: template.CSS(css)}
	for _, t := range r.Tables {
		tv := tableView{Title: t.Title}
		for _, c := range reportColumns {
			tv.Columns = append(tv.Columns, c.Name)
		}
		for _, row := range t.Rows {
			rv := rowView{Model: row.Model, Published: row.Model == r.Published, Scored: row.Scored}
			for _, c := range reportColumns {
				best := true
				for _, o := range t.Rows {
					if o.Model != r.Published && c.rank(c.get(o)) < c.rank(c.get(row)) {
						best = false
					}
				}
				rv.Cells = append(rv.Cells, cellView{Value: strconv.FormatFloat(c.get(row), 'f', 3, 64), Best: best})
			}
			tv.Rows = append(tv.Rows, rv)
		}
		v.Tables = append(v.Tables, tv)
	}
	for i, h := range r.Horizons {
		c := &chart{ID: fmt.Sprintf("horizon%d", i), Title: h.Title,
			Desc: fmt.Sprintf("Mean absolute error of %d models at each of %d steps ahead.", len(h.Models), r.Horizon)}
		for j, m := range h.Models {
			l := line{Name: m.Model, Class: modelClass(m.Model, r.Published, j)}
			for s, e := range m.Errors {
				l.Points = append(l.Points, point{float64(s + 1), e})
			}
			c.Lines = append(c.Lines, l)
		}
		c.Ticks = stepTicks(1, r.Horizon)
		v.Charts = append(v.Charts, chartView{Heading: h.Title, Wide: c.layout("w", wideW, wideH, wideTicks),
			Narrow: c.layout("n", narrowW, narrowH, narrowTicks), Legend: c.legend()})
	}
	for i, tr := range r.Traces {
		c := traceChart(tr, r.Published, fmt.Sprintf("trace%d", i))
		v.Charts = append(v.Charts, chartView{Heading: tr.Series, Wide: c.layout("w", wideW, wideH, wideTicks),
			Narrow: c.layout("n", narrowW, narrowH, narrowTicks), Legend: c.legend()})
	}
	return render(w, "report", "report", v)
}

// modelClass styles the published model like a series page's forecast and
// the others by their position.
func modelClass(model, published string, i int) string {
	if model == published {
		return "mean"
	}
	return "m" + strconv.Itoa(i%6)
}

// traceChart draws a trace on an axis of buckets from the origin: the
// history up to 0, the actuals after it, each model's forecast mean and
// the published model's p10-p90 band.
func traceChart(tr Trace, published, id string) *chart {
	c := &chart{ID: id, Title: tr.Series + ": forecasts at the fixed origin against what sold"}
	hist := line{Name: "history", Class: "hist"}
	for i, y := range tr.History {
		hist.Points = append(hist.Points, point{float64(i - len(tr.History) + 1), y})
	}
	actual := line{Name: "actual", Class: "actual"}
	for i, y := range tr.Actual {
		actual.Points = append(actual.Points, point{float64(i + 1), y})
	}
	c.Lines = append(c.Lines, hist, actual)
	horizon := 0
	for j, f := range tr.Forecasts {
		l := line{Name: f.Model + " mean", Class: modelClass(f.Model, published, j)}
		for h, y := range f.Mean {
			l.Points = append(l.Points, point{float64(h + 1), y})
		}
		horizon = max(horizon, len(f.Mean))
		c.Lines = append(c.Lines, l)
		if f.Model == published && len(f.P10) == len(f.Mean) && len(f.P90) == len(f.Mean) {
			b := band{Name: f.Model + " p10–p90", Class: "band"}
			for h := range f.Mean {
				b.X = append(b.X, float64(h+1))
				b.Lo = append(b.Lo, f.P10[h])
				b.Hi = append(b.Hi, f.P90[h])
			}
			c.Bands = append(c.Bands, b)
		}
	}
	c.Desc = fmt.Sprintf("%d buckets of history, %d actual buckets after the origin and %d models' forecasts over %d buckets.",
		len(tr.History), len(tr.Actual), len(tr.Forecasts), horizon)
	zero := 0.0
	c.Rule, c.RuleLabel = &zero, "origin"
	c.Ticks = stepTicks(-len(tr.History)+1, max(horizon, len(tr.Actual)))
	return c
}

// stepTicks labels whole steps from lo to hi at round intervals.
func stepTicks(lo, hi int) []tick {
	_, _, step := niceScale(float64(lo), float64(hi), 8)
	s := int(max(1, step))
	var out []tick
	for v := lo - lo%s; v <= hi; v += s {
		if v >= lo {
			out = append(out, tick{Pos: float64(v), Label: strconv.Itoa(v)})
		}
	}
	return out
}
