package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

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

// Encoder writes forecast records: as JSON for the forecast topic, and in
// the compact binary form the state store and the changelog keep as a
// series' latest forecast (see AppendCompact), from which Renderer writes
// the same JSON again. Values are rounded to four decimals, which keeps
// records small and cannot reorder quantiles. An Encoder is not safe for
// concurrent use.
type Encoder struct {
	spec     window.Spec
	bucket   string
	flatPct  float64
	p10, p50 int // indexes of the required levels
	p90      int
	extra    []int    // indexes of further levels
	extraKey []string // their JSON keys
	actual   []float64

	// Every series closing a bucket shares the origin and step starts:
	// their compact form is built once per bucket.
	cacheBucket int64
	cacheSteps  int
	starts      []byte
	body        []byte // scratch for starts
	compact     []byte // scratch for Append
	version     []byte // scratch for AppendClose
	r           Renderer
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
// given version of its model (see Close.Version), to dst. It is the
// rendering of the compact form AppendCompact writes, so a record
// rebuilt from the state store is the same bytes.
func (e *Encoder) Append(dst []byte, c *Close, version string) []byte {
	e.compact = e.AppendCompact(e.compact[:0], c, version)
	dst, err := e.r.Append(dst, c.Series.ID(), e.compact)
	if err != nil {
		panic(fmt.Sprintf("pipeline: rendering a compact forecast just encoded: %v", err)) // a bug in this file
	}
	return dst
}

// Render appends the JSON record of series id whose compact forecast
// AppendCompact wrote as v to dst, with the encoder's cache of formatted
// times (see Renderer).
func (e *Encoder) Render(dst []byte, id string, v []byte) ([]byte, error) {
	return e.r.Append(dst, id, v)
}

// AppendClose appends c's published forecast in compact form, with the
// version of its model (see Close.Version), to dst, without allocating.
func (e *Encoder) AppendClose(dst []byte, c *Close) []byte {
	e.version = c.AppendVersion(e.version[:0])
	return e.AppendCompact(dst, c, bytesString(e.version))
}

// compactVersion is the encoding version of a compact forecast. A stored
// latest forecast that starts with '{' instead is a JSON record of an
// earlier build and is served as it is.
const compactVersion = 1

// AppendCompact appends c's published forecast, made by the given version
// of its model, to dst in the compact form a series' latest forecast is
// stored in: every field of the JSON record but the series id (the key
// holds it), values as integers scaled by 1e4, as the record rounds them,
// and times as Unix seconds and zone offsets. Layout, after the version
// byte (uvarint lengths, zigzag varints):
//
//	bucket | starts: len, origin sec, offset, steps, step deltas | generated_at sec, offset |
//	watermark sec, offset | model | model_version | extra quantile keys |
//	per step: mean, p10, p50, p90, extras | trend direction | change_pct: 0, or 1 and float64 bits
func (e *Encoder) AppendCompact(dst []byte, c *Close, version string) []byte {
	f := c.PublishedForecast()
	dst = append(dst, compactVersion)
	dst = appendBytes(dst, e.bucket)
	dst = append(dst, e.stepStarts(c.Bucket, len(f.Mean))...)
	dst = appendInstant(dst, c.GeneratedAt)
	dst = appendInstant(dst, c.Watermark.In(e.spec.Location()))
	dst = appendBytes(dst, c.Model)
	dst = appendBytes(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(e.extra)))
	for _, k := range e.extraKey {
		dst = appendBytes(dst, k)
	}
	nq := len(f.Levels)
	for h := range f.Mean {
		q := f.Q[h*nq : (h+1)*nq]
		dst = appendScaled(dst, f.Mean[h])
		dst = appendScaled(dst, q[e.p10])
		dst = appendScaled(dst, q[e.p50])
		dst = appendScaled(dst, q[e.p90])
		for _, j := range e.extra {
			dst = appendScaled(dst, q[j])
		}
	}
	e.actual = c.Series.QtyTo(e.actual[:0], 7)
	dir, pct, ok := model.TrendOf(e.actual, f.Mean, e.flatPct)
	dst = appendBytes(dst, string(dir))
	if !ok {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(math.Round(pct*100)/100))
}

// stepStarts returns the compact starts section of a forecast from bucket
// with h steps: its length, the origin's time, h and each step's
// distance from the one before with its zone offset.
func (e *Encoder) stepStarts(bucket int64, h int) []byte {
	if bucket == e.cacheBucket && h == e.cacheSteps {
		return e.starts
	}
	e.cacheBucket, e.cacheSteps = bucket, h
	origin := e.spec.Start(bucket)
	body := appendInstant(e.body[:0], origin)
	body = binary.AppendUvarint(body, uint64(h))
	prev := origin.Unix()
	for i := range h {
		t := e.spec.Start(bucket + 1 + int64(i))
		_, off := t.Zone()
		body = binary.AppendVarint(body, t.Unix()-prev)
		body = binary.AppendVarint(body, int64(off))
		prev = t.Unix()
	}
	e.body = body
	e.starts = binary.AppendUvarint(e.starts[:0], uint64(len(body)))
	e.starts = append(e.starts, body...)
	return e.starts
}

// appendInstant appends t's Unix seconds and zone offset: what its RFC
// 3339 form shows.
func appendInstant(dst []byte, t time.Time) []byte {
	_, off := t.Zone()
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendVarint(dst, int64(off))
}

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendScaled appends a forecast value as the record shows it: its
// rounding to four decimals as a zigzag varint of the integer times 1e4,
// shifted left with a clear low bit, or, for values beyond what
// appendValue writes as integers (and -0, NaN, infinities), a set low bit
// and the rounded float64's bits.
func appendScaled(dst []byte, v float64) []byte {
	r := math.Round(v * 1e4)
	if r > -1e15 && r < 1e15 && (r != 0 || !math.Signbit(r)) {
		n := int64(r)
		return binary.AppendUvarint(dst, (uint64(n<<1)^uint64(n>>63))<<1)
	}
	dst = append(dst, 1)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(r))
}

// Renderer writes the JSON forecast record of a compact forecast (see
// Encoder.AppendCompact), caching the formatted times that consecutive
// records share. The zero value is ready; it is not safe for concurrent
// use.
type Renderer struct {
	startsKey       []byte   // the compact starts section last rendered
	starts          [][]byte // its quoted times: origin, then each step
	clock, wm       cachedTime
	clockKey, wmKey [2]int64
}

// cachedTime is a quoted RFC 3339 time, formatted once per value.
type cachedTime struct {
	buf []byte
}

// errCompact reports a compact forecast that does not decode.
var errCompact = errors.New("pipeline: corrupt compact forecast")

// compactReader decodes a compact forecast, remembering the first error.
type compactReader struct {
	b   []byte
	err error
}

func (r *compactReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *compactReader) str() []byte { return r.bytes(r.uvarint()) }

func (r *compactReader) fail() {
	if r.err == nil {
		r.err = errCompact
	}
	r.b = nil
}

// value appends the next forecast value, as appendValue writes it.
func (r *compactReader) value(dst []byte) []byte {
	if len(r.b) > 0 && r.b[0]&1 == 1 {
		bits := r.bytes(9)
		if bits == nil {
			return dst
		}
		return strconv.AppendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(bits[1:]))/1e4, 'f', -1, 64)
	}
	u := r.uvarint() >> 1
	return appendScaledInt(dst, int64(u>>1)^-int64(u&1))
}

// bytesString returns b as a string without copying, for appending it:
// the string must not outlive b's next change.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Bounds of a stored instant: RFC 3339's years 0000 to 9999, and zone
// offsets within a day.
const (
	minInstant = -62167219200 // 0000-01-01T00:00:00Z
	maxInstant = 253402300799 // 9999-12-31T23:59:59Z
)

// instant reads a time written by appendInstant, as a cache key. One
// outside the bounds is corrupt (and would take time to format).
func (r *compactReader) instant() [2]int64 {
	t := [2]int64{r.varint(), r.varint()}
	if t[0] < minInstant || t[0] > maxInstant || t[1] <= -86400 || t[1] >= 86400 {
		r.fail()
		return [2]int64{}
	}
	return t
}

// quoted returns the quoted RFC 3339 form of an instant, formatting it
// only when it differs from the one c holds.
func (c *cachedTime) quoted(key *[2]int64, t [2]int64) []byte {
	if c.buf == nil || *key != t {
		*key = t
		c.buf = appendTime(c.buf[:0], instantTime(t))
	}
	return c.buf
}

func instantTime(t [2]int64) time.Time {
	return time.Unix(t[0], 0).In(time.FixedZone("", int(t[1])))
}

// Append appends the JSON record of series id whose compact forecast is v
// to dst: the bytes Encoder.Append wrote for it. A v that is a JSON
// record already (stored by an earlier build) is appended as it is.
func (rd *Renderer) Append(dst []byte, id string, v []byte) ([]byte, error) {
	if len(v) > 0 && v[0] == '{' {
		return append(dst, v...), nil
	}
	if len(v) == 0 || v[0] != compactVersion {
		return dst, fmt.Errorf("pipeline: compact forecast of series %q has encoding version %d (this build reads %d)", id, firstByte(v), compactVersion)
	}
	r := compactReader{b: v[1:]}
	slash := strings.IndexByte(id, '/')
	if slash < 0 {
		return dst, fmt.Errorf("pipeline: forecast of series %q: the id has no '/'", id)
	}
	dst = append(dst, `{"series":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"store":`...)
	dst = appendString(dst, id[:slash])
	dst = append(dst, `,"sku":`...)
	dst = appendString(dst, id[slash+1:])
	dst = append(dst, `,"bucket":"`...)
	dst = append(dst, r.str()...)
	starts := rd.stepStarts(&r)
	if r.err != nil {
		return dst, fmt.Errorf("series %q: %w", id, r.err)
	}
	dst = append(dst, `","origin":`...)
	dst = append(dst, starts[0]...)
	dst = append(dst, `,"generated_at":`...)
	dst = append(dst, rd.clock.quoted(&rd.clockKey, r.instant())...)
	dst = append(dst, `,"watermark":`...)
	dst = append(dst, rd.wm.quoted(&rd.wmKey, r.instant())...)
	dst = append(dst, `,"model":`...)
	dst = appendString(dst, bytesString(r.str()))
	dst = append(dst, `,"model_version":`...)
	dst = appendString(dst, bytesString(r.str()))
	dst = append(dst, `,"steps":[`...)
	nextra := r.uvarint()
	if nextra > uint64(len(r.b)) {
		r.fail()
		nextra = 0
	}
	var keys [8][]byte
	extra := keys[:0]
	for range nextra {
		extra = append(extra, r.str())
	}
	for h := 1; h < len(starts) && r.err == nil; h++ {
		if h > 1 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"start":`...)
		dst = append(dst, starts[h]...)
		dst = append(dst, `,"mean":`...)
		dst = r.value(dst)
		dst = append(dst, `,"p10":`...)
		dst = r.value(dst)
		dst = append(dst, `,"p50":`...)
		dst = r.value(dst)
		dst = append(dst, `,"p90":`...)
		dst = r.value(dst)
		if len(extra) > 0 {
			dst = append(dst, `,"quantiles":{`...)
			for i, k := range extra {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '"')
				dst = append(dst, k...)
				dst = append(dst, `":`...)
				dst = r.value(dst)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"trend":{"direction":"`...)
	dst = append(dst, r.str()...)
	dst = append(dst, `","change_pct":`...)
	switch b := r.bytes(1); {
	case b == nil:
	case b[0] == 0:
		dst = append(dst, "null"...)
	default:
		if bits := r.bytes(8); bits != nil {
			dst = strconv.AppendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(bits)), 'f', -1, 64)
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail()
	}
	if r.err != nil {
		return dst, fmt.Errorf("series %q: %w", id, r.err)
	}
	return append(dst, "}}"...), nil
}

// stepStarts returns the quoted origin and step start times of the next
// starts section, formatting them only when it differs from the last.
func (rd *Renderer) stepStarts(r *compactReader) [][]byte {
	sec := r.str()
	if r.err != nil {
		return nil
	}
	if rd.starts != nil && string(sec) == string(rd.startsKey) {
		return rd.starts
	}
	rd.startsKey = append(rd.startsKey[:0], sec...)
	rd.starts = rd.starts[:0]
	s := compactReader{b: sec}
	origin := s.instant()
	h := s.uvarint()
	if h > uint64(len(sec)) {
		s.fail()
	}
	rd.starts = append(rd.starts, appendTime(nil, instantTime(origin)))
	t := origin[0]
	for i := uint64(0); i < h && s.err == nil; i++ {
		if t += s.varint(); t < minInstant || t > maxInstant {
			s.fail()
			break
		}
		off := s.varint()
		if off <= -86400 || off >= 86400 {
			s.fail()
			break
		}
		rd.starts = append(rd.starts, appendTime(nil, instantTime([2]int64{t, off})))
	}
	if s.err != nil || len(s.b) > 0 {
		rd.starts, rd.startsKey = nil, rd.startsKey[:0]
		r.fail()
	}
	return rd.starts
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
	return appendScaledInt(dst, int64(r))
}

// appendScaledInt appends n/1e4 as appendValue writes it, for |n| < 1e15.
func appendScaledInt(dst []byte, n int64) []byte {
	if n == 0 {
		return append(dst, '0')
	}
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
