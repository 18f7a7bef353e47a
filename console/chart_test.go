package console

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestNiceScale(t *testing.T) {
	for _, tc := range []struct {
		lo, hi             float64
		from, to, stepWant float64
	}{
		{0, 97, 0, 100, 20},
		{0, 1, 0, 1, 0.2},
		{0, 0, 0, 1, 0.2},
		{0, 12345, 0, 15000, 5000},
		{-3, 7, -4, 8, 2},
		{0, 0.03, 0, 0.03, 0.01},
	} {
		from, to, step := niceScale(tc.lo, tc.hi, 5)
		if math.Abs(from-tc.from) > 1e-9 || math.Abs(to-tc.to) > 1e-9 || math.Abs(step-tc.stepWant) > 1e-9 {
			t.Errorf("niceScale(%v, %v) = %v, %v, %v; want %v, %v, %v", tc.lo, tc.hi, from, to, step, tc.from, tc.to, tc.stepWant)
		}
	}
}

// coords returns the numbers of an SVG path.
func coords(d string) []float64 {
	var out []float64
	for _, f := range regexp.MustCompile(`-?[\d.]+`).FindAllString(d, -1) {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

// TestChartLayout checks that the band and lines land where the data
// says: the band spans p10 to p90, higher values are drawn higher, and
// everything stays inside the plot area.
func TestChartLayout(t *testing.T) {
	s := testSeries("S1", "A", 0)
	c := seriesChart(s, "c", "title")
	l := c.layout("w", wideW, wideH, wideTicks)
	if len(l.Bands) != 1 || l.Bands[0].Class != "band" {
		t.Fatalf("bands %+v, want the p10-p90 band", l.Bands)
	}
	// The axis runs 0..20 (p90 is the largest value).
	yOf := func(v float64) float64 { return l.Bottom - v/20*(l.Bottom-l.Top) }
	pts := coords(l.Bands[0].D)
	if len(pts) != 2*2*len(s.Forecast.Steps) {
		t.Fatalf("band has %d numbers, want %d", len(pts), 4*len(s.Forecast.Steps))
	}
	for i := 0; i < len(pts); i += 2 {
		want := yOf(9)
		if i >= len(pts)/2 {
			want = yOf(20)
		}
		if math.Abs(pts[i+1]-want) > 0.1 {
			t.Errorf("band point %d at y %v, want %v", i/2, pts[i+1], want)
		}
		if pts[i] < l.Left || pts[i] > l.Right {
			t.Errorf("band point %d at x %v, outside %v..%v", i/2, pts[i], l.Left, l.Right)
		}
	}
	if len(l.Lines) != 2 || l.Lines[0].Class != "hist" || l.Lines[1].Class != "mean" {
		t.Fatalf("lines %+v, want history then mean", l.Lines)
	}
	hist := coords(l.Lines[0].D)
	for i, b := range s.Closed {
		if math.Abs(hist[2*i+1]-yOf(b.Qty)) > 0.1 {
			t.Errorf("history point %d at y %v, want %v", i, hist[2*i+1], yOf(b.Qty))
		}
	}
	if len(l.Dots) != 1 || math.Abs(l.Dots[0].CY-yOf(4)) > 0.1 {
		t.Errorf("open bucket dots %+v, want one at y %v", l.Dots, yOf(4))
	}
	if len(l.XTicks) == 0 || len(l.XTicks) > wideTicks || l.Rule == nil {
		t.Errorf("%d x ticks and rule %v", len(l.XTicks), l.Rule)
	}
	if n := c.layout("n", narrowW, narrowH, narrowTicks); len(n.XTicks) > narrowTicks {
		t.Errorf("narrow chart has %d x ticks, want at most %d", len(n.XTicks), narrowTicks)
	}
	empty := (&chart{ID: "e"}).layout("w", wideW, wideH, wideTicks)
	if !empty.Empty {
		t.Error("a chart without data is not empty")
	}
}

// TestWriteReport writes a report and checks that it stands alone (no
// script, nothing fetched), holds the metrics with the best values
// marked, and draws every trace with the published model's band.
func TestWriteReport(t *testing.T) {
	r := &Report{Title: "Backtest <report>", Summary: "2 series", Published: "published", Horizon: 3,
		Tables: []MetricsTable{{Title: "Fixed origin", Rows: []MetricsRow{
			{Model: "naive", MAE: 2, RMSE: 3, Bias: -0.5, Coverage80: 0.7, Scored: 2},
			{Model: "published", MAE: 1.5, RMSE: 2.5, Bias: 0.1, Coverage80: 0.81, Scored: 2},
			{Model: "tsb", MAE: 1.25, RMSE: 3.5, Bias: 0.2, Coverage80: 0.9, Scored: 2},
		}}},
		Horizons: []HorizonChart{{Title: "MAE by horizon", Models: []ModelErrors{{"naive", []float64{1, 2, 3}}, {"tsb", []float64{1, 1, 2}}}}},
		Traces: []Trace{{Series: "S1/<A>", History: []float64{1, 2, 3}, Actual: []float64{4, 5, 6},
			Forecasts: []TraceForecast{{Model: "published", Mean: []float64{3, 3, 3}, P10: []float64{1, 1, 1}, P90: []float64{5, 6, 7}},
				{Model: "naive", Mean: []float64{3, 3, 3}}}}},
	}
	var b bytes.Buffer
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "src=", "<link", "@import", "http://", "https://", "S1/<A>"} {
		if strings.Contains(page, bad) {
			t.Errorf("report holds %q", bad)
		}
	}
	for _, want := range []string{
		"Backtest &lt;report&gt;", "<style>", ":root",
		`<tr data-model="tsb"><th scope="row"><code>tsb</code></th><td class="num"><strong>1.250</strong></td><td class="num">3.500</td>`,
		`<tr data-model="naive"><th scope="row"><code>naive</code></th><td class="num">2.000</td><td class="num"><strong>3.000</strong></td>`,
		`<code>published</code> <span class="hint">(published)</span>`,
		"S1/&lt;A&gt;", `class="band"`, "published p10–p90",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(page, "<svg"); n != 4 {
		t.Errorf("%d SVG charts, want 4 (two charts, wide and narrow)", n)
	}
}
