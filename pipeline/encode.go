package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// ForecastRecord is the value of a record on the forecast topic, keyed by
// series id. schema/forecast.schema.json describes the same document.
// (Series, Origin) identifies a forecast: delivery is at least once, so
// consumers may see a forecast more than once and should keep the last.
type ForecastRecord struct {
	// Series is the series id, "STORE/SKU".
	Series string `json:"series"`
	// Store and SKU are the parts of the series id.
	Store string `json:"store"`
	SKU   string `json:"sku"`
	// Bucket is the bucket width, "1h", "1d" or "1w".
	Bucket string `json:"bucket"`
	// Origin is the start of the last closed bucket the forecast is based on.
	Origin time.Time `json:"origin"`
	// GeneratedAt is the wall-clock time the forecast was made.
	GeneratedAt time.Time `json:"generated_at"`
	// Watermark is the partition's watermark when the bucket closed.
	Watermark time.Time `json:"watermark"`
	// Model names the forecaster that produced the forecast.
	Model string `json:"model"`
	// ModelVersion identifies the forecaster's version or training state.
	ModelVersion string `json:"model_version"`
	// Steps holds one entry per bucket of the horizon, in time order.
	Steps []ForecastStep `json:"steps"`
	// Trend compares the next 7 forecast buckets with the last 7 actual ones.
	Trend model.TrendSummary `json:"trend"`
}

// ForecastStep is one bucket of a forecast. 0 <= P10 <= P50 <= P90.
type ForecastStep struct {
	// Start is the bucket's start.
	Start time.Time `json:"start"`
	// Mean is the point forecast.
	Mean float64 `json:"mean"`
	// P10, P50 and P90 are the 10%, 50% and 90% quantiles.
	P10 float64 `json:"p10"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	// Quantiles holds any further configured quantile levels, keyed by the
	// level ("0.05").
	Quantiles map[string]float64 `json:"quantiles,omitempty"`
}

// Encoder writes forecast records as JSON without reflection or
// allocation. Values are rounded to four decimals, which keeps records small
// and cannot reorder quantiles. An Encoder is not safe for concurrent use.
type Encoder struct {
	spec     window.Spec
	bucket   string
	flatPct  float64
	p10, p50 int // indexes of the required levels
	p90      int
	extra    []int    // indexes of further levels
	extraKey []string // their JSON keys
	actual   []float64

	// Every series closing a bucket shares the origin and step starts, and
	// a batch shares its clock and watermark: their formatted forms are
	// cached.
	cacheBucket int64
	starts      [][]byte // quoted times: origin, then each step's start
	clock, wm   cachedTime
}

// cachedTime is a quoted RFC 3339 time, formatted once per value.
type cachedTime struct {
	t   time.Time
	buf []byte
}

func (c *cachedTime) get(t time.Time) []byte {
	if c.buf == nil || !t.Equal(c.t) || t.Location() != c.t.Location() {
		c.t, c.buf = t, appendTime(c.buf[:0], t)
	}
	return c.buf
}

// NewEncoder returns an encoder of the forecasts of a partition with the
// given bucket layout and quantile levels, which must include the
// required 0.1, 0.5 and 0.9; flatPct is the trend summary's flat band.
func NewEncoder(spec window.Spec, levels []float64, flatPct float64) (*Encoder, error) {
	e := &Encoder{spec: spec, bucket: spec.Width().String(), flatPct: flatPct, cacheBucket: math.MinInt64}
	idx := make([]int, len(requiredLevels))
	for i, q := range requiredLevels {
		idx[i] = slices.Index(levels, q)
		if idx[i] < 0 {
			return nil, fmt.Errorf("pipeline: quantile levels %v lack the required level %v", levels, q)
		}
	}
	e.p10, e.p50, e.p90 = idx[0], idx[1], idx[2]
	for j, q := range levels {
		if !slices.Contains(requiredLevels, q) {
			e.extra = append(e.extra, j)
			e.extraKey = append(e.extraKey, strconv.FormatFloat(q, 'g', -1, 64))
		}
	}
	return e, nil
}

// Append appends the JSON record of c's published forecast, made by the
// given version of its model (see Close.Version), to dst.
func (e *Encoder) Append(dst []byte, c *Close, version string) []byte {
	s, f := c.Series, c.Forecasts[c.Published]
	id := s.ID()
	slash := strings.IndexByte(id, '/')
	dst = append(dst, `{"series":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"store":`...)
	dst = appendString(dst, id[:slash])
	dst = append(dst, `,"sku":`...)
	dst = appendString(dst, id[slash+1:])
	dst = append(dst, `,"bucket":"`...)
	dst = append(dst, e.bucket...)
	starts := e.stepStarts(c.Bucket, len(f.Mean))
	dst = append(dst, `","origin":`...)
	dst = append(dst, starts[0]...)
	dst = append(dst, `,"generated_at":`...)
	dst = append(dst, e.clock.get(c.GeneratedAt)...)
	dst = append(dst, `,"watermark":`...)
	dst = append(dst, e.wm.get(c.Watermark.In(e.spec.Location()))...)
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
		dst = append(dst, starts[h+1]...)
		dst = append(dst, `,"mean":`...)
		dst = appendValue(dst, f.Mean[h])
		dst = append(dst, `,"p10":`...)
		dst = appendValue(dst, q[e.p10])
		dst = append(dst, `,"p50":`...)
		dst = appendValue(dst, q[e.p50])
		dst = append(dst, `,"p90":`...)
		dst = appendValue(dst, q[e.p90])
		if len(e.extra) > 0 {
			dst = append(dst, `,"quantiles":{`...)
			for i, j := range e.extra {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '"')
				dst = append(dst, e.extraKey[i]...)
				dst = append(dst, `":`...)
				dst = appendValue(dst, q[j])
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	e.actual = s.QtyTo(e.actual[:0], 7)
	tr := model.Trend(e.actual, f.Mean, e.flatPct)
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

// stepStarts returns the quoted start times of bucket (the origin) and of
// the h buckets after it.
func (e *Encoder) stepStarts(bucket int64, h int) [][]byte {
	if bucket != e.cacheBucket || len(e.starts) != h+1 {
		e.cacheBucket = bucket
		e.starts = e.starts[:0]
		for i := range h + 1 {
			e.starts = append(e.starts, appendTime(nil, e.spec.Start(bucket+int64(i))))
		}
	}
	return e.starts
}

// appendString appends s as a JSON string, as encoding/json writes it
// without HTML escaping: quotes, backslashes and control characters
// escaped, invalid UTF-8 as U+FFFD, and U+2028 and U+2029 escaped for
// JavaScript readers. strconv.AppendQuote writes Go syntax instead, whose
// \x7f, \a, \v and \U0010ffff are not JSON.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// appendValue appends a forecast value rounded to four decimals, as
// strconv.AppendFloat(dst, math.Round(v*1e4)/1e4, 'f', -1, 64) would, with
// integer arithmetic for the usual magnitudes.
func appendValue(dst []byte, v float64) []byte {
	r := math.Round(v * 1e4)
	if !(r > -1e15 && r < 1e15) || r == 0 {
		return strconv.AppendFloat(dst, r/1e4, 'f', -1, 64)
	}
	n := int64(r)
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/10000, 10)
	frac := n % 10000
	if frac == 0 {
		return dst
	}
	digits := [4]byte{byte('0' + frac/1000), byte('0' + frac/100%10), byte('0' + frac/10%10), byte('0' + frac%10)}
	end := 4
	for digits[end-1] == '0' {
		end--
	}
	dst = append(dst, '.')
	return append(dst, digits[:end]...)
}
