package backtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/window"
)

// PromoCalendar is the promotion calendar of an input, read ahead from
// its events: which buckets of which series are promotions. With it a
// backtest plays a deployment whose promotion plans are known over the
// forecast horizon, as a chain that plans its promotions weeks ahead
// knows them: it implements pipeline.Plans, and every series of the input
// has a known plan. A bucket is a promotion when the share of its events
// flagged promo reaches the lift estimator's threshold, as the window
// counts it.
type PromoCalendar struct {
	threshold float64
	buckets   map[string]map[int64]promoCount
}

// promoCount counts a bucket's events and those flagged promo.
type promoCount struct{ n, promo int32 }

var _ pipeline.Plans = (*PromoCalendar)(nil)

// ReadPromoCalendar reads src to its end into a calendar, bucketing and
// decoding events as an engine of cfg does; records the engine would
// reject are skipped.
func ReadPromoCalendar(src source.Source, cfg pipeline.Config) (*PromoCalendar, error) {
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		return nil, fmt.Errorf("backtest: promotion calendar: %w", err)
	}
	dec, err := pipeline.NewDecoder(cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("backtest: promotion calendar: %w", err)
	}
	c := &PromoCalendar{threshold: cfg.Promotions.Lift.WithDefaults().Threshold, buckets: map[string]map[int64]promoCount{}}
	var ev pipeline.Event
	now := time.Now()
	for {
		r, err := src.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backtest: promotion calendar: %w", err)
		}
		if err := dec.Decode(r.Key, r.Value, now, &ev); err != nil {
			var inv *pipeline.InvalidError
			if errors.As(err, &inv) {
				continue
			}
			return nil, fmt.Errorf("backtest: promotion calendar: %w", err)
		}
		m := c.buckets[string(r.Key)]
		if m == nil {
			m = map[int64]promoCount{}
			c.buckets[string(r.Key)] = m
		}
		idx := spec.Index(ev.Time)
		pc := m[idx]
		pc.n++
		if ev.Promo {
			pc.promo++
		}
		m[idx] = pc
	}
}

// Promo reports whether bucket idx of a series is a promotion.
func (c *PromoCalendar) Promo(series string, idx int64) bool {
	pc, ok := c.buckets[series][idx]
	return ok && float64(pc.promo) >= c.threshold*float64(pc.n)
}

// Plan implements pipeline.Plans: every series of the input has a known
// plan.
func (c *PromoCalendar) Plan(series string, origin int64, promo []bool) bool {
	if _, ok := c.buckets[series]; !ok {
		return false
	}
	for h := range promo {
		promo[h] = c.Promo(series, origin+1+int64(h))
	}
	return true
}

// Promotions is what a backtest with a known promotion calendar measured:
// the rolling accuracy of the published forecasts without the plan (the
// published forecaster's forecast) and with it (as published), on every
// step, on promotion steps and on the others, and the lifts estimated
// at the end of the input.
type Promotions struct {
	// Plain and Planned are the published forecasts' rolling accuracy
	// without and with the plan.
	Plain, Planned PromoAccuracy
	// PromoGain and OverallGain are the relative reductions of the
	// rolling WRMSSE on promotion steps and on every step the plan
	// brought: 0.1 is 10% lower; 0 when nothing was scored.
	PromoGain   float64 `json:"promo_gain"`
	OverallGain float64 `json:"overall_gain"`
	// Lifts summarises the series' estimated lifts at the end.
	Lifts LiftSummary `json:"lifts"`
}

// PromoAccuracy is a rolling WRMSSE, as the backtest protocol defines it, on every step, on
// promotion steps only and on the other steps only: each (series,
// origin) pair with at least one such step scored, its RMSSE over those
// steps, weighted by the series' units in the 28 buckets to the origin;
// 0 when no pair was scored.
type PromoAccuracy struct {
	WRMSSE      float64 `json:"wrmsse"`
	PromoWRMSSE float64 `json:"promo_wrmsse"`
	OtherWRMSSE float64 `json:"other_wrmsse"`
	// Forecasts and PromoForecasts count the pairs scored on every step
	// and on promotion steps; PromoPoints the promotion steps scored.
	Forecasts      int `json:"forecasts"`
	PromoForecasts int `json:"promo_forecasts"`
	PromoPoints    int `json:"promo_points"`
}

// LiftSummary describes the estimated lifts of the series that saw
// promotions.
type LiftSummary struct {
	// Series counts the series with at least MinPromotions promotion
	// buckets, by weight, behind their estimate.
	Series        int     `json:"series"`
	MinPromotions float64 `json:"min_promotions"`
	// Geomean, P10, Median and P90 describe their lifts; Pooled is the
	// partitions' pooled lift, averaged.
	Geomean float64 `json:"geomean"`
	P10     float64 `json:"p10"`
	Median  float64 `json:"median"`
	P90     float64 `json:"p90"`
	Pooled  float64 `json:"pooled"`
}

// promoGroups are the step groups scored: every step, promotions, others.
const (
	groupAll = iota
	groupPromo
	groupOther
	promoGroups
)

// promoEval scores a partition's published forecasts with and without
// the plan, grouped by the calendar's promotion steps.
type promoEval struct {
	cal      *PromoCalendar
	from, to int64 // rolling origins
	series   map[*window.Series]*promoSeries
	acc      [2][promoGroups]promoAccum // plain, planned
	recent   []float64
}

type promoSeries struct {
	n       int
	last    float64
	sumSq   float64
	pending []promoPending
}

type promoPending struct {
	origin         int64
	scale, weight  float64
	plain, planned []float64
	promo          []bool
	actual         []float64
}

type promoAccum struct {
	wrmsse, w float64
	forecasts int
	points    int
}

func newPromoEval(cal *PromoCalendar, origin int64, rolling int) *promoEval {
	return &promoEval{cal: cal, from: origin - int64(rolling) + 1, to: origin, series: map[*window.Series]*promoSeries{}}
}

// closed takes a close: the actual of the bucket that closed, then the
// forecasts made at it if it is a rolling origin.
func (pe *promoEval) closed(c *pipeline.Close) {
	s := c.Series
	ps := pe.series[s]
	if ps == nil {
		ps = new(promoSeries)
		pe.series[s] = ps
	}
	b, _ := s.Last()
	kept := ps.pending[:0]
	for i := range ps.pending {
		p := &ps.pending[i]
		if c.Bucket-p.origin == int64(len(p.actual))+1 {
			p.actual = append(p.actual, b.Qty)
		}
		if len(p.actual) == len(p.plain) {
			pe.score(p)
			continue
		}
		kept = append(kept, *p)
	}
	ps.pending = kept
	if ps.n > 0 {
		d := b.Qty - ps.last
		ps.sumSq += d * d
	}
	ps.n++
	ps.last = b.Qty
	if c.Forecasts == nil || c.Bucket < pe.from || c.Bucket > pe.to || ps.n < 2 {
		return
	}
	plain, planned := c.Forecasts[c.Published], c.PublishedForecast()
	p := promoPending{origin: c.Bucket, scale: ps.sumSq / float64(ps.n-1),
		plain: slices.Clone(plain.Mean), planned: slices.Clone(planned.Mean), promo: make([]bool, len(plain.Mean))}
	pe.cal.Plan(s.ID(), c.Bucket, p.promo)
	pe.recent = s.QtyTo(pe.recent[:0], 28)
	for _, v := range pe.recent {
		p.weight += v
	}
	ps.pending = append(ps.pending, p)
}

// finish scores the forecasts whose actuals the input ended before.
func (pe *promoEval) finish() {
	for _, ps := range pe.series {
		for i := range ps.pending {
			pe.score(&ps.pending[i])
		}
		ps.pending = nil
	}
}

func (pe *promoEval) score(p *promoPending) {
	if !(p.scale > 0) || len(p.actual) == 0 {
		return
	}
	for k, f := range [2][]float64{p.plain, p.planned} {
		var sq [promoGroups]float64
		var n [promoGroups]int
		for h, y := range p.actual {
			e := y - f[h]
			g := groupOther
			if p.promo[h] {
				g = groupPromo
			}
			sq[g] += e * e
			n[g]++
			sq[groupAll] += e * e
			n[groupAll]++
		}
		for g := range promoGroups {
			if n[g] == 0 {
				continue
			}
			a := &pe.acc[k][g]
			a.wrmsse += p.weight * math.Sqrt(sq[g]/float64(n[g])/p.scale)
			a.w += p.weight
			a.forecasts++
			a.points += n[g]
		}
	}
}

// promoResult merges the partitions' promotion scores and lifts.
func promoResult(parts []*replayPartition) *Promotions {
	if parts[0].promo == nil {
		return nil
	}
	var acc [2][promoGroups]promoAccum
	var lifts []float64
	var pooled float64
	const minPromotions = 3
	for _, rp := range parts {
		for k := range acc {
			for g := range acc[k] {
				a, o := &acc[k][g], rp.promo.acc[k][g]
				a.wrmsse += o.wrmsse
				a.w += o.w
				a.forecasts += o.forecasts
				a.points += o.points
			}
		}
		pooled += rp.eng.PooledLift()
		rp.eng.PromoLifts(func(_ string, lift, n float64) {
			if n >= minPromotions {
				lifts = append(lifts, lift)
			}
		})
	}
	res := &Promotions{Lifts: LiftSummary{Series: len(lifts), MinPromotions: minPromotions, Pooled: pooled / float64(len(parts))}}
	for k, dst := range []*PromoAccuracy{&res.Plain, &res.Planned} {
		w := func(g int) float64 {
			if acc[k][g].w == 0 {
				return 0
			}
			return acc[k][g].wrmsse / acc[k][g].w
		}
		*dst = PromoAccuracy{WRMSSE: w(groupAll), PromoWRMSSE: w(groupPromo), OtherWRMSSE: w(groupOther),
			Forecasts: acc[k][groupAll].forecasts, PromoForecasts: acc[k][groupPromo].forecasts, PromoPoints: acc[k][groupPromo].points}
	}
	if res.Plain.PromoWRMSSE > 0 {
		res.PromoGain = 1 - res.Planned.PromoWRMSSE/res.Plain.PromoWRMSSE
	}
	if res.Plain.WRMSSE > 0 {
		res.OverallGain = 1 - res.Planned.WRMSSE/res.Plain.WRMSSE
	}
	if len(lifts) > 0 {
		slices.Sort(lifts)
		var sumLog float64
		for _, l := range lifts {
			sumLog += math.Log(l)
		}
		q := func(p float64) float64 { return lifts[int(p*float64(len(lifts)-1)+0.5)] }
		res.Lifts.Geomean = math.Exp(sumLog / float64(len(lifts)))
		res.Lifts.P10, res.Lifts.Median, res.Lifts.P90 = q(0.1), q(0.5), q(0.9)
	}
	return res
}
