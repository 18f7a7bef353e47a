package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/trendstream/trendstream/source"
)

// execute runs the CLI in process with args and returns its standard
// output.
func execute(t testing.TB, args ...string) string {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	stdout := os.Stdout
	r, w, _ := os.Pipe()
	os.Stdout = w
	err := root.ExecuteContext(context.Background())
	w.Close()
	os.Stdout = stdout
	captured, _ := readAll(r)
	if err != nil {
		t.Fatalf("trendstream %s: %v", strings.Join(args, " "), err)
	}
	return out.String() + captured
}

func readAll(f *os.File) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.String(), err
}

// tinyM5 writes a small deterministic M5 dataset: 8 series over 150 train
// and 28 test days, two of them intermittent and one starting late.
func tinyM5(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	m := &source.M5{Train: 150, FirstDay: source.DefaultM5Start}
	for s := range 8 {
		m.IDs = append(m.IDs, fmt.Sprintf("TX_1/FOODS_3_%03d", s+1))
		row := make([]float64, 178)
		for d := range row {
			switch {
			case s == 7 && d < 60:
			case s >= 6:
				row[d] = float64((d * (s + 3) % 11) / 8)
			default:
				row[d] = float64(2 + s + (d%7)/5*3 + (d*7+s)%4)
			}
		}
		m.Sales = append(m.Sales, row)
	}
	if err := source.WriteM5(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBacktestCommand runs trendstream backtest twice on a small M5
// dataset and checks the report follows the protocol's format, is the same
// both times apart from timings, and that the plots and summary appear.
func TestBacktestCommand(t *testing.T) {
	data := tinyM5(t)
	dir := t.TempDir()
	var reports []map[string]any
	for i := range 2 {
		path := filepath.Join(dir, fmt.Sprintf("report%d.json", i))
		out := execute(t, "backtest", "--m5", data, "--report", path, "--plots", filepath.Join(dir, "plots"),
			"--quiet", "--rolling", "20", "--partitions", "2")
		for _, want := range []string{"fixed origin", "rolling (20 origins)", "published", "ma28", "*"} {
			if !strings.Contains(out, want) {
				t.Errorf("summary lacks %q:\n%s", want, out)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rep map[string]any
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, rep)
	}
	rep := reports[0]
	if rep["protocol"] != "trendstream-backtest/1" || rep["horizon"] != 28.0 {
		t.Errorf("protocol %v horizon %v", rep["protocol"], rep["horizon"])
	}
	ds := rep["dataset"].(map[string]any)
	if ds["series"] != 8.0 || ds["days"] != 178.0 || ds["first_day"] != "2011-01-29" || ds["origin"] != "2011-06-27" {
		t.Errorf("dataset %v", ds)
	}
	fixed := rep["fixed_origin"].(map[string]any)
	rolling := rep["rolling"].(map[string]any)
	if rolling["origins"] != 20.0 {
		t.Errorf("rolling origins %v", rolling["origins"])
	}
	for _, m := range []string{"naive", "seasonal_naive", "ma28", "ets", "tsb", "published"} {
		for _, section := range []map[string]any{fixed, rolling} {
			metrics, ok := section[m].(map[string]any)
			if !ok {
				t.Fatalf("no metrics for %s", m)
			}
			for _, k := range []string{"mae", "rmse", "bias", "rmsse", "wrmsse", "spl", "wspl", "coverage80", "series_scored"} {
				if _, ok := metrics[k].(float64); !ok {
					t.Errorf("%s lacks %s", m, k)
				}
			}
		}
	}
	if fixed["ma28"].(map[string]any)["series_scored"] != 8.0 {
		t.Errorf("series scored %v, want 8", fixed["ma28"].(map[string]any)["series_scored"])
	}
	run := rep["run"].(map[string]any)
	for _, k := range []string{"wall_seconds", "events", "train_steps", "seed", "version", "stages"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run lacks %s", k)
		}
	}
	for _, r := range reports {
		delete(r["run"].(map[string]any), "wall_seconds")
		delete(r["run"].(map[string]any), "stages")
		if mix, ok := r["run"].(map[string]any)["mixing"].(map[string]any); ok { // timings
			delete(mix, "ms_per_mix")
			delete(mix, "wait_ms_per_mix")
		}
	}
	if !reflect.DeepEqual(reports[0], reports[1]) {
		t.Error("two backtests of the same data with the same seed differ beyond wall time")
	}
	plots, _ := filepath.Glob(filepath.Join(dir, "plots", "*.png"))
	if len(plots) < 4 {
		t.Errorf("plots: %v", plots)
	}
}

// TestBacktestArgumentErrors checks that misused source flags are refused
// with a message naming them.
func TestBacktestArgumentErrors(t *testing.T) {
	data := tinyM5(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--quiet"}, "one of --m5, --events, --synthetic and --topic"},
		{[]string{"--m5", data, "--events", "x.csv"}, "one of --m5, --events, --synthetic and --topic"},
		{[]string{"--m5", data, "--from", "2011-03-01"}, "--from selects records of a --topic"},
		{[]string{"--m5", data, "--to", "2011-03-01"}, "--to selects records of a --topic"},
		{[]string{"--topic", "sales", "--origin", "2011-03-01", "--from", "March"}, "--from"},
		{[]string{"--m5", data, "--rolling", "0"}, "--rolling 0: want at least one origin"},
		{[]string{"--m5", data, "--lead-time", "20", "--review-period", "10"}, "--lead-time, --review-period, --service-level: decision: LeadTime 20 + ReviewPeriod 10 exceed the forecast horizon 28"},
		{[]string{"--m5", data, "--service-level", "1"}, "ServiceLevel 1 outside (0, 1)"},
		{[]string{"--m5", data, "--trending-top", "0"}, "--trending-top 0 is below 1"},
		{[]string{"--synthetic", "--days", "0"}, "--days 0: --synthetic needs a finite number of days"},
		{[]string{"--synthetic", "--m5", data}, "one of --m5, --events, --synthetic and --topic"},
	} {
		root := newRoot()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(append([]string{"backtest", "--quiet"}, tc.args...))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("backtest %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestBacktestSyntheticDecisions runs backtest --synthetic and checks that
// the summary and the JSON report carry the decisions: the achieved
// service level of each target and the trend classes' precision and
// recall against the generator's truth.
func TestBacktestSyntheticDecisions(t *testing.T) {
	dir := t.TempDir()
	path, page := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	out := execute(t, "backtest", "--synthetic", "--stores", "1", "--skus", "30", "--days", "150", "--model", "ets",
		"--models", "ets", "--rolling", "60", "--quiet", "--report", path, "--html", page, "--plots", dir)
	for _, png := range []string{"service_level.png", "trend_detection.png"} {
		if st, err := os.Stat(filepath.Join(dir, png)); err != nil || st.Size() == 0 {
			t.Errorf("plot %s: %v", png, err)
		}
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Replenishment: service level by target", "Trend detection against the generator", "<th scope=\"row\">0.99</th>", "<th scope=\"row\">fading</th>"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for _, want := range []string{"replenishment (lead time 7, review period 7, conformal)", "trend classes against the generator's truth"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Dataset struct {
			Source string `json:"source"`
		} `json:"dataset"`
		Decisions struct {
			ServiceLevels []struct {
				Target, Cycle float64
				Plans         int
			} `json:"service_levels"`
			Trends []struct {
				Class     string
				Precision float64
			} `json:"trends"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	d := rep.Decisions
	if len(d.ServiceLevels) != 3 || d.ServiceLevels[0].Target != 0.9 || d.ServiceLevels[2].Target != 0.99 || d.ServiceLevels[0].Plans == 0 {
		t.Errorf("service levels %+v", d.ServiceLevels)
	}
	if len(d.Trends) != 4 || d.Trends[0].Class != "rising" || !strings.HasPrefix(rep.Dataset.Source, "synthetic:seed=1") {
		t.Errorf("trends %+v, source %q", d.Trends, rep.Dataset.Source)
	}
}
