package pipeline

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

func TestAppendValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	values := []float64{0, 1, 0.5, 0.00004, 0.00005, 2.019, 123456.789012, 1e10 + 0.12345, 9.99995, 1e11, 1e14, 1e15, 1e300, -0.25, math.Inf(1)}
	for range 100000 {
		values = append(values, r.ExpFloat64()*math.Pow(10, float64(r.IntN(12)-4)))
	}
	for _, v := range values {
		want := strconv.AppendFloat(nil, math.Round(v*1e4)/1e4, 'f', -1, 64)
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Fatalf("appendValue(%v) = %s, want %s", v, got, want)
		}
	}
}

// FuzzEncode encodes the forecast record of a series with an arbitrary id,
// model name and version: every record must be valid JSON whose strings
// read back as encoding/json writes them (invalid UTF-8 as U+FFFD).
// strconv.AppendQuote, used before, writes Go syntax: \x7f, \a, \v and
// \U000e0001 are not JSON.
func FuzzEncode(f *testing.F) {
	for _, id := range []string{"S1/SKU-1", "s/\x7f", "s/\xff\xfe", "s/a\u2028b", "s/\U000e0001", `s/"q"\`, "s/\a\v\x00", "caf\u00e9/\U0001f600"} {
		f.Add(id, "auto", "mean tsb 1.00; quantiles tsb")
	}
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := NewEncoder(spec, cfg.Model.Levels, cfg.FlatPct)
	if err != nil {
		f.Fatal(err)
	}
	fc := model.NewForecast(cfg.Model)
	for h := range fc.Mean {
		fc.Mean[h] = float64(h) / 3
		for j := range fc.Levels {
			fc.Q[h*len(fc.Levels)+j] = float64(h+j) / 7
		}
	}
	f.Fuzz(func(t *testing.T, id, name, version string) {
		if !strings.Contains(id, "/") {
			id = "s/" + id
		}
		p, err := window.NewPartition(cfg.Window)
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Add([]byte(id), &window.Sale{Time: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), Qty: 1, Price: math.NaN()})
		if err != nil {
			t.Fatal(err)
		}
		c := &Close{Bucket: s.First(), Series: s, Forecasts: []*model.Forecast{fc}, Model: name,
			GeneratedAt: time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC), Watermark: time.Date(2024, 5, 1, 23, 0, 0, 0, time.UTC)}
		rec := enc.Append(nil, c, version)
		if !json.Valid(rec) {
			t.Fatalf("invalid JSON for id %q, model %q, version %q:\n%s...", id, name, version, rec[:min(len(rec), 300)])
		}
		var got ForecastRecord
		if err := json.Unmarshal(rec, &got); err != nil {
			t.Fatal(err)
		}
		slash := strings.IndexByte(id, '/')
		for _, f := range []struct{ got, want string }{
			{got.Series, id}, {got.Store, id[:slash]}, {got.SKU, id[slash+1:]}, {got.Model, name}, {got.ModelVersion, version},
		} {
			if want := jsonString(t, f.want); f.got != want {
				t.Errorf("read back %q, want %q", f.got, want)
			}
		}
	})
}

// jsonString returns s as encoding/json writes and reads it back.
func jsonString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
