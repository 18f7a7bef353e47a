package model

// Direction is the sign of a trend: "up", "flat" or "down".
type Direction string

// Trend directions.
const (
	Up   Direction = "up"
	Flat Direction = "flat"
	Down Direction = "down"
)

// TrendSummary compares the forecast total of the next buckets with the
// actual total of the last ones.
type TrendSummary struct {
	// Direction is Up or Down when the change exceeds the flat band, Flat
	// otherwise.
	Direction Direction `json:"direction"`
	// ChangePct is 100 * (next - last) / last. It is nil when the last
	// buckets sold nothing, where a percentage is undefined.
	ChangePct *float64 `json:"change_pct"`
}

// Trend summarizes a forecast against recent actuals: the sum of the first
// k forecast means against the sum of the last k actuals, where k is 7 or
// fewer when the forecast or the history is shorter. A relative change
// within flatPct percent is Flat; when the last buckets sold nothing, any
// forecast sales are Up.
func Trend(actual, mean []float64, flatPct float64) TrendSummary {
	d, pct, ok := TrendOf(actual, mean, flatPct)
	if !ok {
		return TrendSummary{Direction: d}
	}
	return TrendSummary{Direction: d, ChangePct: &pct}
}

// TrendOf is Trend without the allocation of ChangePct, for encoders that
// run once per series and close: ok is false where ChangePct is nil.
func TrendOf(actual, mean []float64, flatPct float64) (d Direction, pct float64, ok bool) {
	k := min(7, len(mean), len(actual))
	var last, next float64
	for _, v := range actual[len(actual)-k:] {
		last += v
	}
	for _, v := range mean[:k] {
		next += v
	}
	if last == 0 {
		if next > 0 {
			return Up, 0, false
		}
		return Flat, 0, false
	}
	pct = 100 * (next - last) / last
	d = Flat
	switch {
	case pct > flatPct:
		d = Up
	case pct < -flatPct:
		d = Down
	}
	return d, pct, true
}
