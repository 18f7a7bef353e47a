package console

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Chart sizes: wide for laptops and up, narrow for phones; the page holds
// both and its style sheet shows one, so neither needs script to fit.
const (
	wideW, wideH, wideTicks       = 760, 300, 8
	narrowW, narrowH, narrowTicks = 360, 240, 4
)

// overviewView is what the overview page and its live fragment show.
type overviewView struct {
	*Overview
	// At is when the overview was sampled.
	At time.Time
	// Rate is the events consumed per second over the sampler's window;
	// HasRate is false until two samples exist.
	Rate    float64
	HasRate bool
	// DeadLetterTotal sums DeadLetters; Reasons lists the non-zero ones,
	// largest first.
	DeadLetterTotal float64
	Reasons         []reasonCount
	// Err is the backend's error, if the overview could not be read.
	Err string
}

type reasonCount struct {
	Reason string
	Count  float64
}

func newOverviewView(ov *Overview, at time.Time, rate float64, hasRate bool) *overviewView {
	v := &overviewView{Overview: ov, At: at, Rate: rate, HasRate: hasRate}
	for r, n := range ov.DeadLetters {
		v.DeadLetterTotal += n
		if n > 0 {
			v.Reasons = append(v.Reasons, reasonCount{r, n})
		}
	}
	slices.SortFunc(v.Reasons, func(a, b reasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Reason, b.Reason))
	})
	return v
}

// OwnedList names the owned partitions for people.
func (v *overviewView) OwnedList() string {
	parts := make([]int32, len(v.Owned))
	for i, p := range v.Owned {
		parts[i] = p.Partition
	}
	return partitionList(parts)
}

// ShowTrending reports whether the trending section has anything to show.
func (v *overviewView) ShowTrending() bool { return !v.Trending.empty() }

// seriesView is what a series page and its live fragment show.
type seriesView struct {
	*Series
	ID           string
	Wide, Narrow svgChart
	Legend       []line
	// Last and Next are the totals of the last closed buckets and the
	// forecast means of as many next buckets; N is how many.
	Last, Next float64
	N          int
	// OpenQty sums the open buckets.
	OpenQty float64
	// ModelsWide and ModelsNarrow chart the other models' forecasts,
	// when there are any.
	ModelsWide, ModelsNarrow svgChart
	ModelsLegend             []line
	ModelsTable              *modelsTable
}

func newSeriesView(s *Series) *seriesView {
	v := &seriesView{Series: s, ID: s.Store + "/" + s.SKU}
	for _, o := range s.Open {
		v.OpenQty += o.Qty
	}
	if f := s.Forecast; f != nil {
		v.N = min(7, len(f.Steps), len(s.Closed))
		for _, b := range s.Closed[len(s.Closed)-v.N:] {
			v.Last += b.Qty
		}
		for _, st := range f.Steps[:v.N] {
			v.Next += st.Mean
		}
	}
	c := seriesChart(s, "chart", fmt.Sprintf("Sales and forecast of store %s, SKU %s", s.Store, s.SKU))
	v.Wide, v.Narrow = c.layout("w", wideW, wideH, wideTicks), c.layout("n", narrowW, narrowH, narrowTicks)
	v.Legend = c.legend()
	if len(s.Models) > 0 {
		m := modelsChart(s)
		v.ModelsWide, v.ModelsNarrow = m.layout("w", wideW, wideH, wideTicks), m.layout("n", narrowW, narrowH, narrowTicks)
		v.ModelsLegend = m.legend()
		v.ModelsTable = newModelsTable(s)
	}
	return v
}

// NextStep returns the forecast's first step, or nil.
func (v *seriesView) NextStep() *Step {
	if v.Forecast == nil || len(v.Forecast.Steps) == 0 {
		return nil
	}
	return &v.Forecast.Steps[0]
}

// RecentClosed returns the last closed buckets, newest first, for the data
// table.
func (v *seriesView) RecentClosed() []Bucket {
	n := min(len(v.Closed), 28)
	out := slices.Clone(v.Closed[len(v.Closed)-n:])
	slices.Reverse(out)
	return out
}

// seriesChart charts a series' closed buckets, open buckets and forecast
// with its p10-p90 band, on a time axis.
func seriesChart(s *Series, id, title string) *chart {
	c := &chart{ID: id, Title: title}
	x := func(t time.Time) float64 { return float64(t.Unix()) }
	hist := line{Name: "sold (closed buckets)", Class: "hist"}
	for _, b := range s.Closed {
		hist.Points = append(hist.Points, point{x(b.Start), b.Qty})
	}
	open := line{Name: "sold so far (open buckets)", Class: "open"}
	for _, b := range s.Open {
		open.Points = append(open.Points, point{x(b.Start), b.Qty})
	}
	c.Lines = append(c.Lines, hist)
	c.Markers = append(c.Markers, open)
	var starts []time.Time
	for _, bs := range [][]Bucket{s.Closed, s.Open} {
		for _, b := range bs {
			starts = append(starts, b.Start)
		}
	}
	desc := fmt.Sprintf("%d closed buckets", len(s.Closed))
	if f := s.Forecast; f != nil && len(f.Steps) > 0 {
		b := band{Name: "p10–p90 forecast band", Class: "band"}
		mean := line{Name: "forecast mean", Class: "mean"}
		for _, st := range f.Steps {
			b.X = append(b.X, x(st.Start))
			b.Lo = append(b.Lo, st.P10)
			b.Hi = append(b.Hi, st.P90)
			mean.Points = append(mean.Points, point{x(st.Start), st.Mean})
			starts = append(starts, st.Start)
		}
		c.Bands = append(c.Bands, b)
		c.Lines = append(c.Lines, mean)
		r := x(f.Steps[0].Start)
		c.Rule, c.RuleLabel = &r, "forecast"
		desc += fmt.Sprintf(", then a %d-bucket forecast from %s with its 10%% to 90%% band", len(f.Steps), f.Steps[0].Start.Format(time.DateOnly))
	} else {
		desc += ", no forecast yet"
	}
	c.Desc = desc + "."
	c.Ticks = timeTicks(starts, s.Bucket)
	return c
}

// modelsChart charts the published forecast, mean and band, against the
// other models' means at the steps they have, drawn as dots: a backend
// may have a few steps only, and a line between them would invent the
// buckets in between.
func modelsChart(s *Series) *chart {
	c := &chart{ID: "models", Title: fmt.Sprintf("Forecast means of each model for store %s, SKU %s", s.Store, s.SKU)}
	x := func(t time.Time) float64 { return float64(t.Unix()) }
	var starts []time.Time
	if f := s.Forecast; f != nil {
		b := band{Name: "published p10–p90", Class: "band"}
		l := line{Name: "published (" + f.Model + ")", Class: "mean"}
		for _, st := range f.Steps {
			b.X, b.Lo, b.Hi = append(b.X, x(st.Start)), append(b.Lo, st.P10), append(b.Hi, st.P90)
			l.Points = append(l.Points, point{x(st.Start), st.Mean})
			starts = append(starts, st.Start)
		}
		c.Bands = append(c.Bands, b)
		c.Lines = append(c.Lines, l)
	}
	steps := 0
	for i, m := range s.Models {
		l := line{Name: m.Model, Class: "pt m" + strconv.Itoa(i%6)}
		for _, st := range m.Steps {
			if !math.IsNaN(st.Mean) {
				l.Points = append(l.Points, point{x(st.Start), st.Mean})
				starts = append(starts, st.Start)
			}
		}
		steps = max(steps, len(l.Points))
		c.Markers = append(c.Markers, l)
	}
	c.Desc = fmt.Sprintf("The published forecast's mean and 10%% to 90%% band, and as dots the means of %d other models at up to %d steps ahead each.", len(s.Models), steps)
	c.Ticks = timeTicks(starts, s.Bucket)
	return c
}

// modelsTable lays the models' forecasts out for a table: a column per
// step any model has, a row for the published forecast and one per
// model.
type modelsTable struct {
	Steps []modelColumn
	// TotalBuckets is the span of the totals column, 0 for none.
	TotalBuckets int
	Rows         []modelRow
}

type modelColumn struct {
	Start time.Time
	// Ahead is the step's distance from the origin in buckets, 0 when
	// unknown.
	Ahead int
}

type modelRow struct {
	Model     string
	Published bool
	Cells     []modelCell
	Total     modelCell
}

type modelCell struct {
	Known, Band    bool
	Mean, P10, P90 float64
}

func newModelsTable(s *Series) *modelsTable {
	t := &modelsTable{}
	var starts []time.Time
	for _, m := range s.Models {
		for _, st := range m.Steps {
			starts = append(starts, st.Start)
		}
		if m.TotalBuckets > 0 {
			t.TotalBuckets = m.TotalBuckets
		}
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	starts = slices.CompactFunc(starts, time.Time.Equal)
	var pub []Step
	if s.Forecast != nil {
		pub = s.Forecast.Steps
	}
	for _, st := range starts {
		col := modelColumn{Start: st}
		if i := slices.IndexFunc(pub, func(p Step) bool { return p.Start.Equal(st) }); i >= 0 {
			col.Ahead = i + 1
		}
		t.Steps = append(t.Steps, col)
	}
	if f := s.Forecast; f != nil {
		r := modelRow{Model: f.Model, Published: true}
		for _, col := range t.Steps {
			var c modelCell
			if col.Ahead > 0 {
				st := pub[col.Ahead-1]
				c = modelCell{Known: true, Band: true, Mean: st.Mean, P10: st.P10, P90: st.P90}
			}
			r.Cells = append(r.Cells, c)
		}
		if n := t.TotalBuckets; n > 0 && n <= len(pub) {
			r.Total.Known = true
			for _, st := range pub[:n] {
				r.Total.Mean += st.Mean
			}
		}
		t.Rows = append(t.Rows, r)
	}
	for _, m := range s.Models {
		r := modelRow{Model: m.Model}
		for _, col := range t.Steps {
			var c modelCell
			if i := slices.IndexFunc(m.Steps, func(p ModelStep) bool { return p.Start.Equal(col.Start) }); i >= 0 && !math.IsNaN(m.Steps[i].Mean) {
				st := m.Steps[i]
				c = modelCell{Known: true, Band: st.Band, Mean: st.Mean, P10: st.P10, P90: st.P90}
			}
			r.Cells = append(r.Cells, c)
		}
		if m.TotalBuckets == t.TotalBuckets && t.TotalBuckets > 0 && !math.IsNaN(m.Total) {
			r.Total = modelCell{Known: true, Mean: m.Total}
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// timeTicks returns labelled x positions at the distinct bucket starts.
func timeTicks(starts []time.Time, width string) []tick {
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	starts = slices.Compact(starts)
	layout := "Jan 2"
	if width == "1h" {
		layout = "Jan 2 15h"
	}
	out := make([]tick, len(starts))
	for i, t := range starts {
		out[i] = tick{Pos: float64(t.Unix()), Label: t.Format(layout)}
	}
	return out
}

// seriesPath returns the console path of a series' page.
func seriesPath(store, sku string) string {
	return "/series/" + url.PathEscape(store) + "/" + url.PathEscape(sku)
}

// formatCount formats a count with thousands separators: 1,234,567.
func formatCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := strconv.FormatFloat(math.Abs(math.Round(v)), 'f', 0, 64)
	var b strings.Builder
	if v < 0 && math.Round(v) != 0 {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// formatQty formats a quantity with at most two decimals: 12, 3.5, 0.25;
// "–" for an unknown one (NaN).
func formatQty(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	if math.Abs(v) >= 1000 {
		return formatCount(v)
	}
	return trimFloat(v)
}

// formatRate formats a rate with one decimal below 100: 12.5, 1,234.
func formatRate(v float64) string {
	if v >= 100 {
		return formatCount(v)
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
}

// formatPct formats a change in percent with its sign, or "n/a".
func formatPct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", *p)
}

// formatTime formats a time for people, in UTC; a midnight, such as a
// daily bucket's start, as its date alone.
func formatTime(t time.Time) string {
	t = t.UTC()
	switch {
	case t.IsZero():
		return "–"
	case t.Equal(t.Truncate(24 * time.Hour)):
		return t.Format(time.DateOnly)
	}
	return t.Format("2006-01-02 15:04 UTC")
}

// trendWord describes a trend direction with an arrow, so it does not rest
// on colour alone.
func trendWord(dir string) string {
	switch dir {
	case "up":
		return "↑ rising"
	case "down":
		return "↓ falling"
	case "flat":
		return "→ flat"
	}
	return "–"
}
