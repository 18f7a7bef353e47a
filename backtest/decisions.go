package backtest

import (
	"fmt"
	"time"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/window"
)

// ServiceTargets are the target cycle service levels a backtest with
// decisions measures.
var ServiceTargets = []float64{0.90, 0.95, 0.99}

// Decisions is what a backtest with decisions on (Config.Decisions.On)
// measured of them.
type Decisions struct {
	// LeadTime and ReviewPeriod are the policy's, Method the replenisher's.
	LeadTime     int    `json:"lead_time"`
	ReviewPeriod int    `json:"review_period"`
	Method       string `json:"method"`
	// ServiceLevels holds, per target of ServiceTargets, what the plans
	// made from the published forecast at the evaluated origins achieved.
	ServiceLevels []ServiceLevel `json:"service_levels"`
	// Trends holds the precision and recall of each trend class against
	// Config.Truth, nil without it.
	Trends []ClassQuality `json:"trends,omitempty"`
}

// ServiceLevel is what the plans for one target service level achieved.
// A plan made at origin T counts as a cycle without stock-out when the
// demand of T+1 to T+LeadTime+ReviewPeriod stayed at or below its
// order-up-to level, and as a lead time without one when the demand of
// T+1 to T+LeadTime stayed at or below its reorder point. Plans whose
// cycle runs past the data are not scored.
type ServiceLevel struct {
	Target float64 `json:"target"`
	// Cycle and Lead are the achieved cycle and lead-time service levels.
	Cycle float64 `json:"cycle"`
	Lead  float64 `json:"lead_time"`
	// SafetyStock is the mean safety stock (order-up-to level minus the
	// mean cycle demand) and SafetyShare its share of the mean cycle
	// demand.
	SafetyStock float64 `json:"safety_stock"`
	SafetyShare float64 `json:"safety_share"`
	// Plans is the number of plans scored.
	Plans int `json:"plans"`
}

// ClassQuality is the trend classifier's precision and recall of one
// class against the generator's truth (see Config.Truth).
type ClassQuality struct {
	Class string `json:"class"`
	// Flags counts series-days classified as the class, Hits those the
	// truth supports; Episodes counts the truth's runs of the class that
	// sold enough to classify, Detected those flagged.
	Flags, Hits, Episodes, Detected int
	Precision                       float64 `json:"precision"`
	Recall                          float64 `json:"recall"`
}

// Truth is the synthetic generator's truth, for the trend classes'
// precision and recall.
type Truth struct {
	// Items are the generator's items (source.Synthetic.Truth).
	Items []source.ItemTruth
	// Start is the generator's first day.
	Start time.Time
}

// planned is a plan waiting for its cycle's demand.
type planned struct {
	origin             int64
	mean               float64
	orderUpTo, reorder [len3]float64
}

const len3 = 3

// cslCell accumulates the scored plans of one target.
type cslCell struct {
	plans           int
	cycleOK, leadOK int
	safety, mean    float64
}

// decisionEval measures a partition's decisions: replenishment plans for
// each target from the published forecast, and the engine's trend
// classes.
type decisionEval struct {
	reps        [len3]*decision.Replenisher
	states      map[*window.Series]*[len3]decision.ReplenishState
	pending     map[*window.Series][]planned
	cells       [len3]cslCell
	policy      decision.Policy
	lead, cycle int
	y           []float64
	plan        decision.Plan
	flags       map[TrendFlag]bool
}

// TrendFlag is a series classified as a class at a close.
type TrendFlag struct {
	// Series is the series id, "STORE/SKU".
	Series string
	Class  decision.Class
	// Bucket is the index of the closed bucket.
	Bucket int64
}

func newDecisionEval(d *pipeline.Decisions, horizon int) (*decisionEval, error) {
	de := &decisionEval{policy: d.Policy.WithDefaults(), states: map[*window.Series]*[len3]decision.ReplenishState{},
		pending: map[*window.Series][]planned{}, flags: map[TrendFlag]bool{}}
	de.lead, de.cycle = de.policy.LeadTime, de.policy.LeadTime+de.policy.ReviewPeriod
	for i := range de.reps {
		rc := d.Replenish
		rc.Horizon = horizon
		r, err := decision.NewReplenisher(rc)
		if err != nil {
			return nil, fmt.Errorf("backtest: %w", err)
		}
		de.reps[i] = r
	}
	return de, nil
}

// closed scores the plans of series c.Series that came due and, at an
// evaluated origin (plan), plans for every target from the published
// forecast; at closes with a forecast before it (warm), the plans only
// calibrate.
func (de *decisionEval) closed(c *pipeline.Close, plan bool) error {
	s := c.Series
	de.y = s.QtyTo(de.y[:0], de.cycle)
	keep := de.pending[s][:0]
	for _, p := range de.pending[s] {
		if c.Bucket-p.origin < int64(de.cycle) {
			keep = append(keep, p)
			continue
		}
		var demand, leadDemand float64
		for h, v := range de.y {
			demand += v
			if h < de.lead {
				leadDemand += v
			}
		}
		for i := range de.cells {
			cell := &de.cells[i]
			cell.plans++
			if demand <= p.orderUpTo[i] {
				cell.cycleOK++
			}
			if leadDemand <= p.reorder[i] {
				cell.leadOK++
			}
			cell.safety += p.orderUpTo[i] - p.mean
			cell.mean += p.mean
		}
	}
	de.pending[s] = keep
	if c.Forecasts == nil {
		return nil
	}
	if d := c.Decision; d != nil && plan && d.Trend.Class != decision.None {
		de.flags[TrendFlag{Series: s.ID(), Class: d.Trend.Class, Bucket: c.Bucket}] = true
	}
	st := de.states[s]
	if st == nil {
		st = new([len3]decision.ReplenishState)
		de.states[s] = st
	}
	p := planned{origin: c.Bucket}
	for i, target := range ServiceTargets {
		pol := de.policy
		pol.ServiceLevel = target
		if err := de.reps[i].Update(&st[i], c.Bucket, de.y, c.PublishedForecast(), pol, nil, &de.plan); err != nil {
			return fmt.Errorf("backtest: planning series %q: %w", s.ID(), err)
		}
		p.orderUpTo[i], p.reorder[i], p.mean = de.plan.OrderUpTo, de.plan.ReorderPoint, de.plan.Mean
	}
	if plan {
		de.pending[s] = append(de.pending[s], p)
	}
	return nil
}

// decisionsResult merges the partitions' measurements.
func decisionsResult(cfg *Config, parts []*replayPartition, spec window.Spec) *Decisions {
	if parts[0].dec == nil {
		return nil
	}
	d := &Decisions{LeadTime: parts[0].dec.policy.LeadTime, ReviewPeriod: parts[0].dec.policy.ReviewPeriod,
		Method: cfg.Decisions.Replenish.Method.String()}
	for i, target := range ServiceTargets {
		var c cslCell
		for _, rp := range parts {
			pc := &rp.dec.cells[i]
			c.plans += pc.plans
			c.cycleOK += pc.cycleOK
			c.leadOK += pc.leadOK
			c.safety += pc.safety
			c.mean += pc.mean
		}
		sl := ServiceLevel{Target: target, Plans: c.plans}
		if c.plans > 0 {
			sl.Cycle = float64(c.cycleOK) / float64(c.plans)
			sl.Lead = float64(c.leadOK) / float64(c.plans)
			sl.SafetyStock = c.safety / float64(c.plans)
		}
		if c.mean > 0 {
			sl.SafetyShare = c.safety / c.mean
		}
		d.ServiceLevels = append(d.ServiceLevels, sl)
	}
	if cfg.Truth != nil {
		flags := map[TrendFlag]bool{}
		for _, rp := range parts {
			for f := range rp.dec.flags {
				flags[f] = true
			}
		}
		trends, _ := decision.NewTrends(cfg.Decisions.Trend) // validated with the engine's
		from := parts[0].origin - int64(cfg.Rolling) + 1
		d.Trends = TrendQuality(cfg.Truth, flags, spec.Index(cfg.Truth.Start), from, parts[0].origin, trends.Config().MinVolume)
	}
	return d
}

// trendGrace is how many days after a change its flag still counts: a
// change shows in a week's sales only after it has happened.
const trendGrace = 14

// truthIs reports whether class c holds for an item on day d, from its
// expected demand without seasonality, price changes and promotions:
// rising when the level a week later is at least 10% higher, falling when
// it is at least 10% lower, emerging on the days of a launch's ramp,
// fading on the days of a run-down to discontinuation and the week before.
func truthIs(it *source.ItemTruth, c decision.Class, d int) bool {
	now, week := it.Level(d), it.Level(d+7)
	switch c {
	case decision.Rising:
		return now > 0 && week >= 1.1*now
	case decision.Falling:
		return now > 0 && week <= now/1.1
	case decision.Emerging:
		return it.Launch > 0 && d >= it.Launch && d-it.Launch < it.Ramp
	case decision.Fading:
		return it.Stop >= 0 && d <= it.Stop && it.Stop-d < it.Fade+7
	}
	return false
}

// inEpisode is truthIs with rising runs that are launch ramps and falling
// runs that are run-downs left to emerging and fading.
func inEpisode(it *source.ItemTruth, c decision.Class, d int) bool {
	switch c {
	case decision.Rising:
		return truthIs(it, c, d) && !truthIs(it, decision.Emerging, d)
	case decision.Falling:
		return truthIs(it, c, d) && !truthIs(it, decision.Fading, d)
	}
	return truthIs(it, c, d)
}

// TrendQuality scores the flags of the closes from bucket from to to
// against the truth, whose day 0 is bucket day0. A flag of a class on day
// d is a hit when the class holds on some day from d-trendGrace to d. An
// episode, a run of days a class holds, starting from from to
// to-trendGrace, is detected when it is flagged on some day from its start
// to trendGrace days after its end; episodes whose item never sells
// minVolume a week during them are not counted, as the volume rule keeps
// them from classifying.
func TrendQuality(truth *Truth, flags map[TrendFlag]bool, day0, from, to int64, minVolume float64) []ClassQuality {
	item := map[string]int{}
	for i, it := range truth.Items {
		item[it.Store+"/"+it.SKU] = i
	}
	out := make([]ClassQuality, len(decision.Classes))
	for i, c := range decision.Classes {
		out[i].Class = c.String()
	}
	for f := range flags {
		i, ok := item[f.Series]
		if !ok {
			continue
		}
		q := &out[f.Class-1]
		q.Flags++
		d := int(f.Bucket - day0)
		for back := range trendGrace + 1 {
			if truthIs(&truth.Items[i], f.Class, d-back) {
				q.Hits++
				break
			}
		}
	}
	lo, hi := int(from-day0), int(to-day0)-trendGrace
	for i := range truth.Items {
		it := &truth.Items[i]
		id := it.Store + "/" + it.SKU
		for _, c := range decision.Classes {
			q := &out[c-1]
			for d := lo; d <= hi; d++ {
				if !inEpisode(it, c, d) || inEpisode(it, c, d-1) {
					continue
				}
				end, peak := d, 0.0
				for ; inEpisode(it, c, end); end++ {
					peak = max(peak, it.Level(end))
				}
				if 7*peak < minVolume {
					continue
				}
				q.Episodes++
				for day := d; day < end+trendGrace; day++ {
					if flags[TrendFlag{Series: id, Class: c, Bucket: day0 + int64(day)}] {
						q.Detected++
						break
					}
				}
			}
		}
	}
	for i := range out {
		q := &out[i]
		q.Precision = ratio(q.Hits, q.Flags)
		q.Recall = ratio(q.Detected, q.Episodes)
	}
	return out
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
