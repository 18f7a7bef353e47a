package console

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rowCells returns the data-value attributes of the table row of model
// name in the section with the given id, in column order.
func rowCells(t *testing.T, page, section, name string) []string {
	t.Helper()
	i := strings.Index(page, `id="`+section+`"`)
	if i < 0 {
		t.Fatalf("no section %s", section)
	}
	sec := page[i:]
	sec = sec[:strings.Index(sec, "</section>")]
	row := regexp.MustCompile(`<tr data-model="` + regexp.QuoteMeta(name) + `"[^>]*>(.*?)</tr>`).FindStringSubmatch(sec)
	if row == nil {
		t.Fatalf("section %s has no row for %q", section, name)
	}
	var out []string
	for _, m := range regexp.MustCompile(`<td class="num"(?: data-(?:value|total)="([^"]*)")?>`).FindAllStringSubmatch(row[1], -1) {
		out = append(out, m[1])
	}
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// TestModelsAndAccuracy renders the Models and Accuracy sections of a
// series page and checks each table cell against the data: the published
// forecast's row at the models' steps, each model's means (– where it has
// none), bands and totals, and each model's errors, scores and weight,
// with event-derived model names escaped.
func TestModelsAndAccuracy(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name     string
		models   []ModelForecast
		accuracy []ModelAccuracy
		// want maps a table row to its cells' data values, per section.
		wantModels map[string][]string
		wantAcc    map[string][]string
		// wantText must appear in the page.
		wantText []string
		dots     int // in each of the models charts
	}{
		{
			name: "steps ahead and totals",
			models: []ModelForecast{
				{Model: "ets", Steps: []ModelStep{{Start: day0.AddDate(0, 0, 20), Mean: 11, P10: 8, P90: 15, Band: true}, {Start: day0.AddDate(0, 0, 26), Mean: 12.5}}, Total: 80, TotalBuckets: 7},
				{Model: "tsb", Steps: []ModelStep{{Start: day0.AddDate(0, 0, 20), Mean: 9}, {Start: day0.AddDate(0, 0, 26), Mean: nan}}, Total: 61, TotalBuckets: 7},
			},
			accuracy: []ModelAccuracy{
				{Model: "ets", RMSE: 2.5, NextRMSE: 1.75, Pinball: 1.2, Scored: 30, Weight: 0.75, Quantiles: true},
				{Model: "tsb", RMSE: nan, NextRMSE: 3, Pinball: nan, Scored: 3, Weight: -1},
			},
			wantModels: map[string][]string{
				"auto": {"14", "14", "98"}, // the published mean at steps 1 and 7, and over 7 buckets
				"ets":  {"11", "12.5", "80"},
				"tsb":  {"9", "", "61"},
			},
			wantAcc: map[string][]string{
				"ets": {"2.5", "1.75", "1.2", "30", "0.75"},
				"tsb": {"NaN", "3", "NaN", "3", "-1"},
			},
			wantText: []string{"1 ahead", "7 ahead", "Next 7, total", `data-band="8 15"`, "8–15", "75%", "band published"},
			dots:     3,
		},
		{
			name:       "odd model names",
			models:     []ModelForecast{{Model: `<b>x</b>"`, Steps: []ModelStep{{Start: day0.AddDate(0, 0, 22), Mean: 3}}}},
			accuracy:   []ModelAccuracy{{Model: `<b>x</b>"`, RMSE: 1, NextRMSE: 1, Pinball: 1, Scored: 1, Weight: 1}},
			wantModels: map[string][]string{"auto": {"14"}, "&lt;b&gt;x&lt;/b&gt;&#34;": {"3"}},
			wantAcc:    map[string][]string{"&lt;b&gt;x&lt;/b&gt;&#34;": {"1", "1", "1", "1", "1"}},
			wantText:   []string{"3 ahead", "<code>&lt;b&gt;x&lt;/b&gt;&#34;</code>"},
			dots:       1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSeries("S1", "A", 0)
			s.Models, s.Accuracy = tc.models, tc.accuracy
			var b bytes.Buffer
			if err := render(&b, "series", "series-live", newSeriesView(s)); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			for row, want := range tc.wantModels {
				if got := rowCells(t, page, "s-models", row); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("models row %s: %q, want %q", row, got, want)
				}
			}
			for row, want := range tc.wantAcc {
				if got := rowCells(t, page, "s-accuracy", row); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("accuracy row %s: %q, want %q", row, got, want)
				}
			}
			for _, w := range tc.wantText {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if strings.Contains(page, "<b>") {
				t.Error("a model name reached the page unescaped")
			}
			// Both chart sizes draw a dot per known model step, and no line.
			models := page[strings.Index(page, `id="s-models"`):strings.Index(page, `id="s-accuracy"`)]
			if n := strings.Count(models, `<circle class="dot pt m`); n != 2*tc.dots {
				t.Errorf("%d model dots in the charts, want %d", n, 2*tc.dots)
			}
			if strings.Contains(models, `<path class="line pt`) {
				t.Error("the models charts join the models' means with lines")
			}
			if strings.Count(models, `<path class="band"`) != 2 {
				t.Error("the models charts lack the published band")
			}
		})
	}
}
