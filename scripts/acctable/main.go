// Command acctable turns the backtest reports of scripts/accuracy.sh into
// the markdown tables of the README's "Accuracy" section: per data set and
// evaluation window, each model's WRMSSE with 1 and 8 partitions, rolling
// origins first, as the mean over the seeds measured with their range,
// and the published forecast's margin over the best single forecaster and
// over the best classical one.
//
//	go run ./scripts/acctable DIR
//
// Reports are found by their names, DATASET-WINDOW-pPARTITIONS-sSEED.json;
// a cell shows how many seeds it averages when not all four.
package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
)

// metrics are the scores of one model in a report.
type metrics struct {
	WRMSSE float64 `json:"wrmsse"`
}

// report is the part of a backtest report the tables show.
type report struct {
	Dataset struct {
		Origin string `json:"origin"`
	} `json:"dataset"`
	Fixed   map[string]json.RawMessage `json:"fixed_origin"`
	Rolling map[string]json.RawMessage `json:"rolling"`
}

// run is one report's key.
type run struct {
	dataset, window string
	partitions      int
}

// cell collects one model's scores over seeds.
type cell []float64

func (c cell) String() string {
	if len(c) == 0 {
		return "–"
	}
	var sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range c {
		sum += v
		lo, hi = min(lo, v), max(hi, v)
	}
	s := fmt.Sprintf("%.3f", sum/float64(len(c)))
	if len(c) > 1 {
		s += fmt.Sprintf(" (%.3f–%.3f)", lo, hi)
	}
	if len(c) != 4 {
		s += fmt.Sprintf(" [%d]", len(c))
	}
	return s
}

func (c cell) mean() float64 {
	var sum float64
	for _, v := range c {
		sum += v
	}
	return sum / float64(len(c))
}

var nameRE = regexp.MustCompile(`^([a-z0-9]+)-([a-z]+)-p([0-9]+)-s([0-9]+)\.json$`)

// classical are the forecasters the published one must beat by the
// issue's margin.
var classical = []string{"naive", "seasonal_naive", "ma28", "ets", "tsb"}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: acctable DIR")
		os.Exit(2)
	}
	if err := tables(os.Stdout, os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "acctable:", err)
		os.Exit(1)
	}
}

// scores maps a run, an evaluation ("rolling" or "fixed") and a model to
// its WRMSSE over seeds.
type scores map[run]map[string]map[string]cell

func load(dir string) (scores, map[run]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	out, origins := scores{}, map[run]string{}
	for _, p := range paths {
		m := nameRE.FindStringSubmatch(filepath.Base(p))
		if m == nil {
			continue
		}
		parts, _ := strconv.Atoi(m[3])
		k := run{m[1], m[2], parts}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		origins[k] = r.Dataset.Origin
		if out[k] == nil {
			out[k] = map[string]map[string]cell{"rolling": {}, "fixed": {}}
		}
		for eval, ms := range map[string]map[string]json.RawMessage{"rolling": r.Rolling, "fixed": r.Fixed} {
			for name, raw := range ms {
				var x metrics
				if json.Unmarshal(raw, &x) != nil { // "origins" is a number
					continue
				}
				out[k][eval][name] = append(out[k][eval][name], x.WRMSSE)
			}
		}
	}
	return out, origins, nil
}

func tables(w io.Writer, dir string) error {
	sc, origins, err := load(dir)
	if err != nil {
		return err
	}
	var keys []run
	for k := range sc {
		keys = append(keys, k)
	}
	type group struct{ dataset, window string }
	var groups []group
	for _, k := range keys {
		if g := (group{k.dataset, k.window}); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	slices.SortFunc(groups, func(a, b group) int {
		if a.dataset != b.dataset {
			return cmp.Compare(a.dataset, b.dataset)
		}
		return -cmp.Compare(a.window, b.window) // protocol before early
	})
	for _, g := range groups {
		var parts []int
		models := []string{}
		origin := ""
		for _, k := range keys {
			if k.dataset != g.dataset || k.window != g.window {
				continue
			}
			parts = append(parts, k.partitions)
			origin = origins[k]
			for name := range sc[k]["rolling"] {
				if !slices.Contains(models, name) {
					models = append(models, name)
				}
			}
		}
		slices.Sort(parts)
		slices.SortFunc(models, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
		fmt.Fprintf(w, "**%s, %s window (origin %s)**, WRMSSE, mean of seeds (min–max)\n\n", g.dataset, g.window, origin)
		fmt.Fprint(w, "| model |")
		for _, eval := range []string{"rolling", "fixed"} {
			for _, p := range parts {
				fmt.Fprintf(w, " %s, p%d |", eval, p)
			}
		}
		fmt.Fprint(w, "\n|---|")
		for range 2 * len(parts) {
			fmt.Fprint(w, "---|")
		}
		fmt.Fprintln(w)
		for _, name := range models {
			if name == "auto" { // the same as published
				continue
			}
			fmt.Fprintf(w, "| %s |", name)
			for _, eval := range []string{"rolling", "fixed"} {
				for _, p := range parts {
					fmt.Fprintf(w, " %s |", sc[run{g.dataset, g.window, p}][eval][name])
				}
			}
			fmt.Fprintln(w)
		}
		for _, vs := range []struct {
			label string
			pool  func(string) bool
		}{
			{"best single", func(n string) bool { return n != "published" && n != "auto" }},
			{"best classical", func(n string) bool { return slices.Contains(classical, n) }},
		} {
			fmt.Fprintf(w, "| published vs %s |", vs.label)
			for _, eval := range []string{"rolling", "fixed"} {
				for _, p := range parts {
					ms := sc[run{g.dataset, g.window, p}][eval]
					best, bestName := math.Inf(1), ""
					for name, c := range ms {
						if vs.pool(name) && len(c) > 0 && c.mean() < best {
							best, bestName = c.mean(), name
						}
					}
					if pub := ms["published"]; len(pub) > 0 && bestName != "" {
						fmt.Fprintf(w, " %+.1f%% (%s) |", 100*(pub.mean()/best-1), bestName)
					} else {
						fmt.Fprint(w, " – |")
					}
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// rank orders the models: published first, then learners, then the
// classical forecasters in report order.
func rank(name string) string {
	switch {
	case name == "published":
		return "0"
	case slices.Contains(classical, name):
		return fmt.Sprintf("2%d", slices.Index(classical, name))
	}
	return "1" + name
}
