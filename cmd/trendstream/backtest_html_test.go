package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBacktestHTML writes the JSON and the HTML report of one backtest and
// checks that the page shows the JSON's metrics for every model, draws
// the error by horizon and each picked trace with its band, and stands
// alone.
func TestBacktestHTML(t *testing.T) {
	data := tinyM5(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	execute(t, "backtest", "--m5", data, "--report", jsonPath, "--html", htmlPath, "--plots", dir, "--quiet", "--rolling", "10",
		"--model", "tsb", "--models", "naive,ma28")
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		FixedOrigin map[string]struct {
			MAE, WRMSSE float64
		} `json:"fixed_origin"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	fixed := page[strings.Index(page, "<h2>Fixed origin</h2>"):strings.Index(page, "<h2>Rolling")]
	if len(rep.FixedOrigin) != 4 {
		t.Fatalf("JSON report has %d models, want naive, ma28, tsb and published", len(rep.FixedOrigin))
	}
	for name, m := range rep.FixedOrigin {
		row := regexp.MustCompile(`<tr data-model="` + name + `">.*?</tr>`).FindString(fixed)
		for _, v := range []float64{m.MAE, m.WRMSSE} {
			if !strings.Contains(row, fmt.Sprintf("%.3f", v)) {
				t.Errorf("fixed-origin row of %s lacks %.3f: %s", name, v, row)
			}
		}
	}
	// Two horizon charts and the series the PNG plots show, each wide and
	// narrow.
	traces, err := filepath.Glob(filepath.Join(dir, "series_*.png"))
	if err != nil || len(traces) == 0 {
		t.Fatalf("no series plots: %v", err)
	}
	if n := strings.Count(page, "<svg"); n != 2*(2+len(traces)) {
		t.Errorf("%d SVG charts, want %d", n, 2*(2+len(traces)))
	}
	var drawn []string
	for _, m := range regexp.MustCompile(`<h2>([^<]*/[^<]*)</h2>`).FindAllStringSubmatch(page, -1) {
		drawn = append(drawn, filepath.Join(dir, "series_"+strings.ReplaceAll(m[1], "/", "_")+".png"))
	}
	if !slices.Equal(drawn, traces) {
		t.Errorf("report draws %v, the plots %v", drawn, traces)
	}
	for _, want := range []string{"MAE by horizon, fixed origin", `class="band"`, "published p10–p90", "tsb mean", "naive mean"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("report is not self-contained: holds %q", bad)
		}
	}
}
