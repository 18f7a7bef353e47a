package pipeline

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// referenceRecord is the JSON forecast record as the encoder wrote it
// before forecasts were stored compactly, kept as the schema's reference:
// records rendered from the compact form must be these bytes.
func referenceRecord(spec window.Spec, levels []float64, flatPct float64, c *Close, version string) []byte {
	var p10, p50, p90 int
	var extra []int
	var extraKey []string
	for j, q := range levels {
		switch q {
		case 0.1:
			p10 = j
		case 0.5:
			p50 = j
		case 0.9:
			p90 = j
		default:
			extra = append(extra, j)
			extraKey = append(extraKey, strconv.FormatFloat(q, 'g', -1, 64))
		}
	}
	value := func(dst []byte, v float64) []byte {
		return strconv.AppendFloat(dst, math.Round(v*1e4)/1e4, 'f', -1, 64)
	}
	s, f := c.Series, c.Forecasts[c.Published]
	id := s.ID()
	slash := strings.IndexByte(id, '/')
	dst := []byte(`{"series":`)
	dst = appendString(dst, id)
	dst = append(dst, `,"store":`...)
	dst = appendString(dst, id[:slash])
	dst = append(dst, `,"sku":`...)
	dst = appendString(dst, id[slash+1:])
	dst = append(dst, `,"bucket":"`...)
	dst = append(dst, spec.Width().String()...)
	dst = append(dst, `","origin":`...)
	dst = appendTime(dst, spec.Start(c.Bucket))
	dst = append(dst, `,"generated_at":`...)
	dst = appendTime(dst, c.GeneratedAt)
	dst = append(dst, `,"watermark":`...)
	dst = appendTime(dst, c.Watermark.In(spec.Location()))
	dst = append(dst, `,"model":`...)
	dst = appendString(dst, c.Model)
	dst = append(dst, `,"model_version":`...)
	dst = appendString(dst, version)
	dst = append(dst, `,"steps":[`...)
	nq := len(f.Levels)
	for h := range f.Mean {
		if h > 0 {
			dst = append(dst, ',')
		}
		q := f.Q[h*nq : (h+1)*nq]
		dst = append(dst, `{"start":`...)
		dst = appendTime(dst, spec.Start(c.Bucket+1+int64(h)))
		dst = append(dst, `,"mean":`...)
		dst = value(dst, f.Mean[h])
		dst = append(dst, `,"p10":`...)
		dst = value(dst, q[p10])
		dst = append(dst, `,"p50":`...)
		dst = value(dst, q[p50])
		dst = append(dst, `,"p90":`...)
		dst = value(dst, q[p90])
		if len(extra) > 0 {
			dst = append(dst, `,"quantiles":{`...)
			for i, j := range extra {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '"')
				dst = append(dst, extraKey[i]...)
				dst = append(dst, `":`...)
				dst = value(dst, q[j])
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	tr := model.Trend(s.QtyTo(nil, 7), f.Mean, flatPct)
	dst = append(dst, `],"trend":{"direction":"`...)
	dst = append(dst, tr.Direction...)
	dst = append(dst, `","change_pct":`...)
	if tr.ChangePct == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendFloat(dst, math.Round(*tr.ChangePct*100)/100, 'f', -1, 64)
	}
	return append(dst, "}}"...)
}

// TestCompactRecord checks that the forecast topic's record, and the
// record rendered from the compact form the store keeps, are the
// reference encoder's bytes, across zones with daylight saving, widths,
// extra quantiles and values at the edges of the integer encoding.
func TestCompactRecord(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	kolkata := time.FixedZone("IST", 5*3600+30*60)
	edge := []float64{0, math.Copysign(0, -1), -0.00004, 0.00005, 9.99995, 1e11, 1e14, 1e15, -1e16, 1e300, math.Inf(1), math.NaN(), 123456.789012}
	tests := []struct {
		name      string
		width     window.Width
		loc       *time.Location
		levels    []float64
		clockZone *time.Location
		qty       []float64 // the series' sales, one per bucket
		values    func(r *rand.Rand, i int) float64
	}{
		{name: "daily UTC", width: window.Day, loc: time.UTC, levels: model.DefaultLevels, clockZone: time.UTC,
			qty: []float64{1, 3, 0, 2, 5, 1, 1, 4}, values: func(r *rand.Rand, _ int) float64 { return r.ExpFloat64() * 3 }},
		{name: "no sales: change_pct null", width: window.Day, loc: time.UTC, levels: model.DefaultLevels, clockZone: time.UTC,
			qty: []float64{0, 0, 0}, values: func(r *rand.Rand, _ int) float64 { return r.Float64() }},
		{name: "daily across DST, extra levels", width: window.Day, loc: ny, levels: []float64{0.05, 0.1, 0.5, 0.9, 0.95}, clockZone: kolkata,
			qty: []float64{2, 2, 2, 2}, values: func(r *rand.Rand, _ int) float64 { return r.ExpFloat64() * math.Pow(10, float64(r.IntN(12)-4)) }},
		{name: "hourly across DST", width: window.Hour, loc: ny, levels: model.DefaultLevels, clockZone: ny,
			qty: []float64{1, 0, 1}, values: func(r *rand.Rand, _ int) float64 { return r.NormFloat64() }},
		{name: "weekly, edge values", width: window.Week, loc: kolkata, levels: model.DefaultLevels, clockZone: time.UTC,
			qty: []float64{7, 9}, values: func(_ *rand.Rand, i int) float64 { return edge[i%len(edge)] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := window.NewSpec(tc.width, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := NewEncoder(spec, tc.levels, 5)
			if err != nil {
				t.Fatal(err)
			}
			part, err := window.NewPartition(window.Config{Width: tc.width, Location: tc.loc})
			if err != nil {
				t.Fatal(err)
			}
			// Buckets before the spring DST change in New York.
			t0 := time.Date(2024, 3, 6, 12, 0, 0, 0, tc.loc)
			if tc.width == window.Hour {
				t0 = time.Date(2024, 3, 10, 0, 30, 0, 0, tc.loc)
			}
			var s *window.Series
			for i, q := range tc.qty {
				at := t0.Add(time.Duration(i) * width(spec))
				if s, err = part.Add([]byte("S1/SKU \"1\""), &window.Sale{Time: at, Qty: q, Price: 1}); err != nil {
					t.Fatal(err)
				}
				part.Advance(func(int64, []*window.Series) error { return nil })
			}
			part.AdvanceTo(t0.Add(time.Duration(len(tc.qty)+1)*width(spec)), func(int64, []*window.Series) error { return nil })
			r := rand.New(rand.NewPCG(3, 4))
			fc := model.NewForecast(model.Config{Horizon: 30, Levels: tc.levels})
			var rd Renderer
			for round := range 3 {
				for h := range fc.Mean {
					fc.Mean[h] = tc.values(r, h)
					for j := range fc.Levels {
						fc.Q[h*len(fc.Levels)+j] = tc.values(r, h+j+round)
					}
				}
				c := &Close{Bucket: s.Closed() + int64(round), Series: s, Forecasts: []*model.Forecast{nil, fc}, Published: 1, Model: "auto",
					GeneratedAt: time.Date(2024, 3, 12, 9, 30, round, 5e8, tc.clockZone), Watermark: time.Date(2024, 3, 11, 23, 0, 0, 0, time.UTC)}
				want := referenceRecord(spec, tc.levels, 5, c, "mix tsb 0.5 \u2028")
				got := enc.Append(nil, c, "mix tsb 0.5 \u2028")
				if !bytes.Equal(got, want) {
					t.Fatalf("round %d: topic record\n%s\nwant\n%s", round, got, want)
				}
				compact := enc.AppendCompact(nil, c, "mix tsb 0.5 \u2028")
				stored, err := rd.Append(nil, s.ID(), compact)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(stored, want) {
					t.Fatalf("round %d: record from the store\n%s\nwant\n%s", round, stored, want)
				}
				if len(compact)*2 > len(want) && tc.name == "daily UTC" {
					t.Errorf("compact form %d bytes for a %d-byte record", len(compact), len(want))
				}
			}
		})
	}
}

// TestRendererRejects checks that truncated or foreign stored values are
// errors, and that a JSON record of an earlier build is served as it is.
func TestRendererRejects(t *testing.T) {
	spec, _ := window.NewSpec(window.Day, time.UTC)
	enc, err := NewEncoder(spec, model.DefaultLevels, 5)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := window.NewPartition(window.Config{Width: window.Day})
	s, _ := part.Add([]byte("a/b"), &window.Sale{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Qty: 1})
	fc := model.NewForecast(model.Config{Horizon: 28, Levels: model.DefaultLevels})
	c := &Close{Bucket: 10, Series: s, Forecasts: []*model.Forecast{fc}, Model: "tsb", GeneratedAt: time.Unix(0, 0), Watermark: time.Unix(0, 0)}
	full := enc.AppendCompact(nil, c, "v")
	var rd Renderer
	for n := range len(full) {
		if _, err := rd.Append(nil, "a/b", full[:n]); err == nil {
			t.Fatalf("a compact forecast cut to %d of %d bytes rendered without error", n, len(full))
		}
	}
	if _, err := rd.Append(nil, "a/b", append(full[:len(full):len(full)], 0)); err == nil {
		t.Error("a compact forecast with a trailing byte rendered without error")
	}
	legacy := []byte(`{"series":"a/b"}`)
	if got, err := rd.Append(nil, "a/b", legacy); err != nil || !bytes.Equal(got, legacy) {
		t.Errorf("legacy JSON record: %s, %v", got, err)
	}
}

// width returns the nominal length of spec's buckets.
func width(spec window.Spec) time.Duration {
	return spec.Start(1).Sub(spec.Start(0))
}

// FuzzRenderer renders arbitrary stored values: a truncated or corrupt
// one is an error or a record, never a panic or a read out of bounds.
// (The bucket, quantile keys and direction are written as stored, so only
// values the encoder wrote render as valid JSON; TestCompactRecord checks
// those.)
func FuzzRenderer(f *testing.F) {
	spec, _ := window.NewSpec(window.Day, time.UTC)
	enc, err := NewEncoder(spec, []float64{0.05, 0.1, 0.5, 0.9}, 5)
	if err != nil {
		f.Fatal(err)
	}
	part, _ := window.NewPartition(window.Config{Width: window.Day})
	s, _ := part.Add([]byte("a/b"), &window.Sale{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Qty: 1})
	fc := model.NewForecast(model.Config{Horizon: 3, Levels: []float64{0.05, 0.1, 0.5, 0.9}})
	fc.Mean[1], fc.Q[2] = 1.5, math.Inf(1)
	c := &Close{Bucket: 10, Series: s, Forecasts: []*model.Forecast{fc}, Model: "tsb", GeneratedAt: time.Unix(0, 0), Watermark: time.Unix(0, 0)}
	f.Add(enc.AppendCompact(nil, c, "v"))
	f.Add([]byte{compactVersion})
	f.Add([]byte{compactVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, v []byte) {
		var rd Renderer
		rec, err := rd.Append(nil, "a/b", v)
		if err != nil && !bytes.HasPrefix(rec, []byte(`{"series":`)) && len(rec) > 0 {
			t.Fatalf("a failed render appended %q", rec)
		}
	})
}
