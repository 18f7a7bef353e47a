package decision

import (
	"fmt"
	"math"

	"github.com/trendstream/trendstream/model"
)

// TrendConfig configures trend classification. The zero value of each
// field means its default.
type TrendConfig struct {
	// Window is the number of buckets compared, the last Window closed
	// buckets against the reference; a multiple of the seasonal period
	// keeps the comparison free of it. The default is 7.
	Window int
	// Reference is the number of windows averaged, position by position,
	// into the reference, and Skip the number of windows between them and
	// the last: with the defaults 3 and 1 the last 7 days are compared
	// with days 15 to 35 before the origin, so a change that started two
	// weeks ago shows in full.
	Reference, Skip int
	// MinVolume is the least total a window must reach to classify: the
	// last window for rising and emerging, the reference for falling and
	// fading. A jump from 0 to 1 is never a trend. The default is 10.
	MinVolume float64
	// MinChange is the least relative change of rising, emerging and
	// falling series. The default is 0.3.
	MinChange float64
	// FadeShare is the share of its reference below which a falling
	// series is fading. The default is 0.4.
	FadeShare float64
	// Z is the least change, in standard deviations of the series' own
	// noise, that classifies. The default is 3.
	Z float64
	// Young is the age, in buckets since the series' first, up to which a
	// rising series is emerging. The default is 56.
	Young int
	// Elasticity bounds the price elasticity of demand: a change in the
	// direction a price change pushes demand is discounted by the ratio of
	// prices to this power, so that a price cut's sales are not a trend.
	// The default is 2.
	Elasticity float64
	// Memory is the number of closes over which a series' noise level is
	// averaged. The default is 28.
	Memory int
}

func (c *TrendConfig) withDefaults() (TrendConfig, error) {
	d := *c
	setDefault(&d.Window, 7)
	setDefault(&d.Reference, 3)
	setDefault(&d.Skip, 1)
	setDefault(&d.MinVolume, 10)
	setDefault(&d.MinChange, 0.3)
	setDefault(&d.FadeShare, 0.4)
	setDefault(&d.Z, 3)
	setDefault(&d.Young, 56)
	setDefault(&d.Elasticity, 2)
	setDefault(&d.Memory, 28)
	switch {
	case d.Window < 1 || d.Window > 366:
		return d, fmt.Errorf("decision: trend Window %d outside [1, 366]", d.Window)
	case d.Reference < 1 || d.Reference > 52:
		return d, fmt.Errorf("decision: trend Reference %d outside [1, 52]", d.Reference)
	case d.Skip < 0 || d.Skip > 52:
		return d, fmt.Errorf("decision: trend Skip %d outside [0, 52]", d.Skip)
	case !(d.MinVolume >= 0) || math.IsInf(d.MinVolume, 0):
		return d, fmt.Errorf("decision: trend MinVolume %v is not a non-negative number", d.MinVolume)
	case !(d.MinChange > 0 && d.MinChange < 1):
		return d, fmt.Errorf("decision: trend MinChange %v outside (0, 1)", d.MinChange)
	case !(d.FadeShare > 0 && d.FadeShare < 1-d.MinChange):
		return d, fmt.Errorf("decision: trend FadeShare %v outside (0, 1-MinChange)", d.FadeShare)
	case !(d.Z > 0) || math.IsInf(d.Z, 0):
		return d, fmt.Errorf("decision: trend Z %v is not a positive number", d.Z)
	case d.Young < 0:
		return d, fmt.Errorf("decision: trend Young %d is negative", d.Young)
	case !(d.Elasticity >= 0) || math.IsInf(d.Elasticity, 0):
		return d, fmt.Errorf("decision: trend Elasticity %v is not a non-negative number", d.Elasticity)
	case d.Memory < 1:
		return d, fmt.Errorf("decision: trend Memory %d is below 1", d.Memory)
	}
	return d, nil
}

// setDefault sets *v to def when it is zero.
func setDefault[T int | float64](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Class is what a series' trend is at a close.
type Class uint8

// Trend classes. None is the class of every series that is none of the
// others; only the others are ranked.
const (
	None Class = iota
	// Rising series sell materially more than before, and their forecast
	// does not expect a return.
	Rising
	// Falling series sell materially less.
	Falling
	// Emerging series are young series that are rising: launches ramping
	// up.
	Emerging
	// Fading series sell a small share of what they sold: they are heading
	// to zero, a discontinuation risk.
	Fading
)

// Classes lists the ranked classes in report order.
var Classes = []Class{Rising, Falling, Emerging, Fading}

// classes is the number of ranked classes.
const classes = 4

var classNames = [...]string{"none", "rising", "falling", "emerging", "fading"}

// String returns the class name used in records and the HTTP API.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", c)
}

// ParseClass returns the class named s.
func ParseClass(s string) (Class, error) {
	for _, c := range Classes {
		if c.String() == s {
			return c, nil
		}
	}
	return None, fmt.Errorf("decision: unknown trend class %q (have rising, falling, emerging, fading)", s)
}

// Trend is a series' trend at a close.
type Trend struct {
	// Class is the series' class.
	Class Class
	// Score is the strength of the evidence for the class, in standard
	// deviations of the series' noise, above TrendConfig.Z for a class
	// other than None; rankings order by it.
	Score float64
	// Last is the total of the last window and Reference the reference
	// total (the mean of the reference windows), both over the positions
	// compared (buckets with a promotion are left out on both sides) and
	// scaled to a full window. They are 0 when too few positions compare.
	Last, Reference float64
	// Next is the forecast total of the next window.
	Next float64
}

// Change returns the relative change of Last against Reference, NaN when
// the reference is 0.
func (t *Trend) Change() float64 {
	if t.Reference == 0 {
		return math.NaN()
	}
	return t.Last/t.Reference - 1
}

// TrendState is what Trends keeps per series between closes: the series'
// noise level. The zero value is the state of a new series.
type TrendState struct {
	// dispersion is the averaged index of dispersion (variance over mean)
	// of the series' buckets around their position's reference mean, and
	// n the number of closes averaged.
	dispersion float64
	n          uint32
}

// Trends classifies the trends of series at their bucket closes:
//
// The last Window buckets are compared, position by position (day of the
// week for daily buckets), with the mean of the same positions in the
// Reference windows that end Skip windows before them. Buckets with a
// promotion (a promotion share of at least one half) are left out on both
// sides, so a promotion is not a trend; a change in the direction a price
// change pushes demand is discounted by the price ratio to the power
// Elasticity. The difference is scaled by its standard deviation under
// the series' own noise: its index of dispersion, measured at every close
// from how its reference buckets scatter around their position's mean,
// averaged over Memory closes, and never below 1 (Poisson). A series is
//
//   - fading when its reference reaches MinVolume and it now sells at most
//     FadeShare of it, by at least Z standard deviations;
//   - falling when it sells at least MinChange less, by at least Z;
//   - rising, or emerging while it is at most Young buckets old, when its
//     last window reaches MinVolume and it sells at least MinChange more,
//     by at least Z;
//
// and each class also needs the forecast of the next window to agree: to
// keep at least half of the least change (MinChange/2 above the
// reference for rising and emerging, below it for falling and fading).
//
// Comparing the last window with the forecast of the next one alone, as
// model.Trend does, is no trend detector with forecasters that smooth a
// level: they lag a rise, so a rising series' forecast is below its last
// week and reads as falling (TestTrendingOnSynthetic measures it).
//
// A Trends holds only its configuration and is safe for concurrent use;
// a TrendState belongs to its series' partition.
type Trends struct {
	cfg TrendConfig
}

// NewTrends returns a classifier, or an error naming the first invalid
// field of cfg.
func NewTrends(cfg TrendConfig) (*Trends, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Trends{cfg: c}, nil
}

// Config returns the configuration with its defaults.
func (t *Trends) Config() TrendConfig { return t.cfg }

// History returns the number of closed buckets, ending at the origin, that
// Classify compares: the last window and the windows behind it.
func (t *Trends) History() int { return t.cfg.Window * (1 + t.cfg.Skip + t.cfg.Reference) }

// promoShare is the promotion share from which a bucket counts as
// promoted.
const promoShare = 0.5

// Classify updates a series' state at a bucket close and returns its
// trend. in holds the series' closed buckets up to the origin (at least
// History of them for a full comparison; Price and Promo may be nil), age
// is the number of closed buckets since the series' first, and f is the
// forecast published at the close. It does not allocate.
func (t *Trends) Classify(st *TrendState, in *model.Input, age int64, f *model.Forecast) Trend {
	c := &t.cfg
	w := c.Window
	var tr Trend
	for _, m := range f.Mean[:min(w, len(f.Mean))] {
		tr.Next += m
	}
	y := in.Y
	n := len(y)
	promoted := func(i int) bool { return in.Promo != nil && in.Promo[i] >= promoShare }
	var last, ref, inv float64      // matched totals, sum of 1/count of reference values
	var priceLast, priceRef float64 // summed over positions with known prices
	var priced int
	var sum, sq float64 // of reference values, for the dispersion
	var values, groups int
	matched := 0
	for j := max(n-w, 0); j < n; j++ {
		var rs, ps float64
		var cnt, pcnt int
		var gs, gq float64
		for k := 1 + c.Skip; k <= c.Skip+c.Reference; k++ {
			i := j - k*w
			if i < 0 {
				break
			}
			if promoted(i) {
				continue
			}
			rs += y[i]
			gs += y[i]
			gq += y[i] * y[i]
			cnt++
			if in.Price != nil && in.Price[i] > 0 {
				ps += float64(in.Price[i])
				pcnt++
			}
		}
		if cnt == 0 {
			continue
		}
		// Within-position scatter: sum of squared deviations from the
		// position's mean, the dispersion's numerator.
		sum += gs
		sq += gq - gs*gs/float64(cnt)
		values += cnt
		groups++
		if promoted(j) {
			continue
		}
		mean := rs / float64(cnt)
		last += y[j]
		ref += mean
		inv += 1 / float64(cnt)
		matched++
		if pcnt > 0 && in.Price != nil && in.Price[j] > 0 {
			priceLast += float64(in.Price[j])
			priceRef += ps / float64(pcnt)
			priced++
		}
	}
	if values > groups && sum > 0 {
		mean := sum / float64(values)
		local := sq / float64(values-groups) / mean
		alpha := max(1/float64(st.n+1), 1/float64(c.Memory))
		if st.n == 0 {
			st.dispersion = local
		} else {
			st.dispersion += alpha * (local - st.dispersion)
		}
		if st.n < math.MaxUint32 {
			st.n++
		}
	}
	if matched < (w+1)/2 {
		return tr
	}
	scale := float64(w) / float64(matched)
	tr.Last, tr.Reference = last*scale, ref*scale
	level := max(tr.Last, tr.Reference)
	if level == 0 {
		return tr
	}
	// Var(last - ref) for counts with variance D times their mean: the
	// matched last buckets plus each reference mean of cnt buckets.
	sd := math.Sqrt(max(st.dispersion, 1)*level/float64(w)) * scale * math.Sqrt(float64(matched)+inv)
	up, down := tr.Last, tr.Last
	if priced > 0 {
		if p := priceLast / priceRef; p < 1 {
			up *= math.Pow(p, c.Elasticity)
		} else {
			down *= math.Pow(p, c.Elasticity)
		}
	}
	zUp, zDown := (up-tr.Reference)/sd, (tr.Reference-down)/sd
	// The forecast must keep at least half of the least change.
	holdsUp := tr.Next >= (1+c.MinChange/2)*tr.Reference
	holdsDown := tr.Next <= (1-c.MinChange/2)*tr.Reference
	switch {
	case tr.Reference >= c.MinVolume && down <= c.FadeShare*tr.Reference && zDown >= c.Z && holdsDown:
		tr.Class, tr.Score = Fading, zDown
	case up >= c.MinVolume && up >= (1+c.MinChange)*tr.Reference && zUp >= c.Z && holdsUp:
		tr.Class, tr.Score = Rising, zUp
		if age <= int64(c.Young) {
			tr.Class = Emerging
		}
	case tr.Reference >= c.MinVolume && down <= (1-c.MinChange)*tr.Reference && zDown >= c.Z && holdsDown:
		tr.Class, tr.Score = Falling, zDown
	}
	return tr
}
