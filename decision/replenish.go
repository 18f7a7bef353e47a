package decision

import (
	"fmt"
	"math"
	"slices"

	"github.com/trendstream/trendstream/model"
)

// Policy is a series' inventory policy: a periodic review (R, S) policy
// with lead time. The zero value of each field means its default.
type Policy struct {
	// LeadTime is the number of buckets from an order to its delivery. The
	// default is 7.
	LeadTime int
	// ReviewPeriod is the number of buckets between orders. The default is
	// 7.
	ReviewPeriod int
	// ServiceLevel is the target cycle service level: the probability
	// that demand over a cycle (LeadTime + ReviewPeriod buckets) does not
	// exceed the order-up-to level. The default is 0.95.
	ServiceLevel float64
	// PackSize is the unit orders are rounded up to a multiple of. The
	// default is 1.
	PackSize float64
}

// WithDefaults returns p with its zero fields set to their defaults.
func (p Policy) WithDefaults() Policy {
	setDefault(&p.LeadTime, 7)
	setDefault(&p.ReviewPeriod, 7)
	setDefault(&p.ServiceLevel, 0.95)
	setDefault(&p.PackSize, 1)
	return p
}

// Validate checks a policy, defaults applied, against a forecast horizon:
// the cycle must fit in it.
func (p Policy) Validate(horizon int) error {
	switch {
	case p.LeadTime < 1:
		return fmt.Errorf("decision: LeadTime %d is below 1", p.LeadTime)
	case p.ReviewPeriod < 1:
		return fmt.Errorf("decision: ReviewPeriod %d is below 1", p.ReviewPeriod)
	case p.LeadTime+p.ReviewPeriod > horizon:
		return fmt.Errorf("decision: LeadTime %d + ReviewPeriod %d exceed the forecast horizon %d", p.LeadTime, p.ReviewPeriod, horizon)
	case !(p.ServiceLevel > 0 && p.ServiceLevel < 1):
		return fmt.Errorf("decision: ServiceLevel %v outside (0, 1)", p.ServiceLevel)
	case !(p.PackSize > 0) || math.IsInf(p.PackSize, 0):
		return fmt.Errorf("decision: PackSize %v is not a positive number", p.PackSize)
	}
	return nil
}

// Stock is a series' stock position.
type Stock struct {
	// OnHand is the stock on hand, negative for backorders.
	OnHand float64
	// OnOrder is the stock ordered and not yet delivered.
	OnOrder float64
}

// Method is how the distribution of demand over several buckets is made
// from a forecast. Per-step quantiles cannot be added: the demand of
// neighbouring buckets is correlated (a level the forecast misses is
// missed for every step), so the methods differ in how they treat it.
type Method uint8

const (
	// Conformal calibrates on realised totals: each series' forecast total
	// of the next k buckets is compared, k buckets later, with the demand
	// that came, and the error divided by the series' scale (below) is
	// pooled over the partition's series into a decayed histogram per
	// stratum of expected demand. A quantile is the forecast total plus the
	// scale times the pooled quantile. The scale blends the series' own
	// root mean squared error of such totals with the negative binomial's
	// standard deviation (NegBinom), weighted by the number of errors
	// scored, so a young series leans on its model and an old one on its
	// record. Until a stratum's pool has weight, the partition's pool
	// answers, and until that has, NegBinom does. Whatever correlation the
	// forecaster misses shows in the realised totals, so the method is
	// honest about it by construction.
	Conformal Method = iota
	// NegBinom fits a count distribution with a shared level factor: the
	// demand of every step is Poisson with the step's mean times one
	// gamma-distributed level, which makes the total negative binomial
	// with variance M + phi·M². phi comes from the forecast's bands (each
	// step's standard deviation is its 10-90% band over 2.563), so all the
	// extra-Poisson variance the forecaster admits is taken as fully
	// correlated between steps.
	NegBinom
	// Independent adds the steps' variances (from the bands, as NegBinom)
	// as if steps were independent and takes a normal quantile: the
	// textbook sigma·sqrt(L) rule, which ignores correlation between
	// steps.
	Independent
)

var methodNames = [...]string{"conformal", "negbinom", "independent"}

// String returns the method's name.
func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return fmt.Sprintf("Method(%d)", m)
}

// ParseMethod returns the method named s.
func ParseMethod(s string) (Method, error) {
	for i, n := range methodNames {
		if n == s {
			return Method(i), nil
		}
	}
	return 0, fmt.Errorf("decision: unknown method %q (have %v)", s, methodNames)
}

// ReplenishConfig configures a partition's Replenisher. The zero value of
// each field means its default.
type ReplenishConfig struct {
	// Method is how demand distributions are made. The default is
	// Conformal.
	Method Method
	// Horizon is the number of steps of the forecasts. The default is 28.
	Horizon int
	// Levels are the quantile levels of the cycle demand a Plan reports,
	// strictly increasing in (0, 1). The default is 0.5, 0.9, 0.95, 0.99.
	Levels []float64
	// HalfLife is the number of closes after which a calibration error
	// weighs half. The default is 45.
	HalfLife float64
	// MinWeight is the calibration weight a stratum needs before its
	// quantiles are used. The default is 500.
	MinWeight float64
	// Prior is the number of scored errors the model's standard deviation
	// counts for in a series' scale. The default is 2.
	Prior float64
	// Memory is the number of scored errors over which a series' own
	// error is averaged. The default is 28.
	Memory int
}

// DefaultLevels are the cycle demand quantiles a Plan reports by default.
var DefaultLevels = []float64{0.5, 0.9, 0.95, 0.99}

// roles of a multi-bucket total: the lead time and the cycle.
const (
	roleLead = iota
	roleCycle
	roles
)

// strataBounds separate the strata of expected demand, in units, that
// calibrate apart: the shape of a normalized error depends on how
// discrete the demand is. The last stratum, past all, pools them all.
var strataBounds = [...]float64{1, 4, 16, 64}

const (
	strata    = len(strataBounds) + 1
	allStrata = strata
)

func stratum(mean float64) int {
	for i, b := range strataBounds {
		if mean < b {
			return i
		}
	}
	return len(strataBounds)
}

// Replenisher computes replenishment plans for the series of one
// partition at their bucket closes, and keeps the partition's pooled
// calibration (see Conformal). A Replenisher belongs to one goroutine.
type Replenisher struct {
	cfg    ReplenishConfig
	decay  float64
	bucket int64 // the close being processed, math.MinInt64 before the first
	pools  [roles][strata + 1]histogram
}

// NewReplenisher returns a Replenisher, or an error naming the first
// invalid field of cfg.
func NewReplenisher(cfg ReplenishConfig) (*Replenisher, error) {
	setDefault(&cfg.Horizon, 28)
	setDefault(&cfg.HalfLife, 45)
	setDefault(&cfg.MinWeight, 500)
	setDefault(&cfg.Prior, 2)
	setDefault(&cfg.Memory, 28)
	if len(cfg.Levels) == 0 {
		cfg.Levels = DefaultLevels
	}
	cfg.Levels = slices.Clone(cfg.Levels)
	switch {
	case int(cfg.Method) >= len(methodNames):
		return nil, fmt.Errorf("decision: unknown Method %d", cfg.Method)
	case cfg.Horizon < 2:
		return nil, fmt.Errorf("decision: Horizon %d is below 2", cfg.Horizon)
	case !(cfg.HalfLife > 0) || math.IsInf(cfg.HalfLife, 0):
		return nil, fmt.Errorf("decision: HalfLife %v is not a positive number", cfg.HalfLife)
	case !(cfg.MinWeight > 0) || math.IsInf(cfg.MinWeight, 0):
		return nil, fmt.Errorf("decision: MinWeight %v is not a positive number", cfg.MinWeight)
	case !(cfg.Prior > 0) || math.IsInf(cfg.Prior, 0):
		return nil, fmt.Errorf("decision: Prior %v is not a positive number", cfg.Prior)
	case cfg.Memory < 1:
		return nil, fmt.Errorf("decision: Memory %d is below 1", cfg.Memory)
	}
	for i, q := range cfg.Levels {
		if !(q > 0 && q < 1) || i > 0 && q <= cfg.Levels[i-1] {
			return nil, fmt.Errorf("decision: Levels %v are not strictly increasing in (0, 1)", cfg.Levels)
		}
	}
	return &Replenisher{cfg: cfg, decay: math.Exp2(-1 / cfg.HalfLife), bucket: math.MinInt64}, nil
}

// Config returns the configuration with its defaults.
func (r *Replenisher) Config() ReplenishConfig { return r.cfg }

// ReplenishState is what a Replenisher keeps per series between closes:
// the forecast totals of the last cycle's closes, waiting for their
// actuals, and the series' averaged squared errors. The zero value is the
// state of a new series.
type ReplenishState struct {
	lead, cycle int       // the horizons the ring was made for
	at          []int64   // per slot (close modulo cycle): the close
	total       []float64 // per slot and role: forecast total
	scale       []float64 // per slot and role: scale at the forecast
	mse         [roles]float64
	n           [roles]uint32
}

// reset sizes the state for a policy's horizons, forgetting what it held.
func (st *ReplenishState) reset(lead, cycle int) {
	*st = ReplenishState{lead: lead, cycle: cycle,
		at:    make([]int64, cycle),
		total: make([]float64, roles*cycle),
		scale: make([]float64, roles*cycle)}
	for i := range st.at {
		st.at[i] = math.MinInt64
	}
}

// Plan is a series' replenishment at a close.
type Plan struct {
	// Cycle is the number of buckets a cycle covers, LeadTime +
	// ReviewPeriod.
	Cycle int
	// Mean is the expected demand over the cycle, the sum of the
	// forecast's means.
	Mean float64
	// Quantiles holds the cycle demand's quantiles at the configured
	// Levels. The slice is reused by the next Update into the Plan.
	Quantiles []float64
	// LeadMean is the expected demand over the lead time.
	LeadMean float64
	// ReorderPoint is the lead-time demand's quantile at the service
	// level: a stock position at or below it may run out before an order
	// placed now arrives.
	ReorderPoint float64
	// OrderUpTo is the cycle demand's quantile at the service level: the
	// stock position an order placed now should restore.
	OrderUpTo float64
	// SafetyStock is OrderUpTo - Mean.
	SafetyStock float64
	// Order is the quantity to order if the close is a review, OrderUpTo
	// minus the stock position rounded up to a multiple of the pack size,
	// never negative; HasOrder is false, and Order 0, when the stock
	// position is unknown.
	Order    float64
	HasOrder bool
	// Calibrated reports whether the quantiles came from the pooled
	// calibration (Conformal with enough errors scored).
	Calibrated bool
}

// Update is called at each close of a series' bucket with its closed
// buckets ending at the origin (at least a cycle of them, or errors are
// not scored), the forecast published at the close (its Levels must
// include 0.1 and 0.9), the series' policy (zero fields mean defaults)
// and its stock position, nil when unknown. It scores the forecast totals
// that came due, records the new ones and writes the plan to dst. Closes
// of one partition come in bucket order; all series of a close see the
// calibration as of the close before. It does not allocate once dst and
// the state are sized.
func (r *Replenisher) Update(st *ReplenishState, bucket int64, y []float64, f *model.Forecast, p Policy, stock *Stock, dst *Plan) error {
	p = p.WithDefaults()
	if err := p.Validate(min(r.cfg.Horizon, f.Horizon())); err != nil {
		return err
	}
	if stock != nil && !(stock.OnOrder >= 0 && !math.IsInf(stock.OnOrder, 0) && !math.IsNaN(stock.OnHand) && !math.IsInf(stock.OnHand, 0)) {
		return fmt.Errorf("decision: stock on hand %v, on order %v", stock.OnHand, stock.OnOrder)
	}
	lo, hi := slices.Index(f.Levels, 0.1), slices.Index(f.Levels, 0.9)
	if lo < 0 || hi < 0 {
		return fmt.Errorf("decision: forecast levels %v lack 0.1 or 0.9", f.Levels)
	}
	lead, cycle := p.LeadTime, p.LeadTime+p.ReviewPeriod
	if st.lead != lead || st.cycle != cycle {
		st.reset(lead, cycle)
	}
	if bucket != r.bucket {
		if r.bucket != math.MinInt64 && bucket > r.bucket {
			d := math.Pow(r.decay, float64(bucket-r.bucket))
			for i := range r.pools {
				for j := range r.pools[i] {
					r.pools[i][j].fold(d)
				}
			}
		}
		r.bucket = bucket
	}
	horizons := [roles]int{lead, cycle}
	alpha := 1 / float64(r.cfg.Memory)
	for role, k := range horizons {
		origin := bucket - int64(k)
		slot := int(mod(origin, int64(cycle)))
		if st.at[slot] != origin || len(y) < k {
			continue
		}
		var actual float64
		for _, v := range y[len(y)-k:] {
			actual += v
		}
		total, scale := st.total[slot*roles+role], st.scale[slot*roles+role]
		e := actual - total
		st.mse[role] += max(alpha, 1/float64(st.n[role]+1)) * (e*e - st.mse[role])
		if st.n[role] < math.MaxUint32 {
			st.n[role]++
		}
		if scale > 0 {
			z := e / scale
			r.pools[role][stratum(total)].observe(z)
			r.pools[role][allStrata].observe(z)
		}
	}

	// The forecast's totals and, from its bands, each step's variance.
	var means, sq, excess [roles]float64
	var m2 float64
	nq := len(f.Levels)
	for h := range cycle {
		m := f.Mean[h]
		sd := (f.Q[h*nq+hi] - f.Q[h*nq+lo]) / (2 * 1.2815515655446004)
		for role, k := range horizons {
			if h < k {
				means[role] += m
				sq[role] += sd * sd
			}
		}
		excess[roleCycle] += sd*sd - m
		m2 += m * m
	}
	phi := 0.0
	if m2 > 0 {
		phi = max(excess[roleCycle], 0) / m2
	}
	dst.Calibrated = false
	quantile := func(role int, q float64) float64 {
		mean := means[role]
		switch r.cfg.Method {
		case Independent:
			return max(mean+normalQuantile(q)*math.Sqrt(sq[role]), 0)
		case Conformal:
			pool := &r.pools[role][stratum(mean)]
			if pool.total < r.cfg.MinWeight {
				pool = &r.pools[role][allStrata]
			}
			if pool.total >= r.cfg.MinWeight {
				dst.Calibrated = true
				return max(mean+r.seriesScale(st, role, mean, phi)*pool.quantile(q), 0)
			}
		}
		return nbQuantile(mean, phi, q)
	}
	dst.Cycle, dst.Mean, dst.LeadMean = cycle, means[roleCycle], means[roleLead]
	dst.Quantiles = dst.Quantiles[:0]
	for _, q := range r.cfg.Levels {
		dst.Quantiles = append(dst.Quantiles, quantile(roleCycle, q))
	}
	dst.ReorderPoint = quantile(roleLead, p.ServiceLevel)
	dst.OrderUpTo = quantile(roleCycle, p.ServiceLevel)
	dst.SafetyStock = dst.OrderUpTo - dst.Mean
	dst.Order, dst.HasOrder = 0, stock != nil
	if stock != nil {
		if short := dst.OrderUpTo - stock.OnHand - stock.OnOrder; short > 0 {
			dst.Order = math.Ceil(short/p.PackSize) * p.PackSize
		}
	}

	slot := int(mod(bucket, int64(cycle)))
	st.at[slot] = bucket
	for role := range horizons {
		st.total[slot*roles+role] = means[role]
		st.scale[slot*roles+role] = r.seriesScale(st, role, means[role], phi)
	}
	return nil
}

// seriesScale is the scale of a series' normalized errors of a role: the
// root of its mean squared error blended with the negative binomial's
// variance, the model counting for Prior scores.
func (r *Replenisher) seriesScale(st *ReplenishState, role int, mean, phi float64) float64 {
	n := float64(min(st.n[role], uint32(r.cfg.Memory)))
	model := mean + phi*mean*mean
	return math.Sqrt((n*st.mse[role] + r.cfg.Prior*model) / (n + r.cfg.Prior))
}

func mod(a, m int64) int64 { return ((a % m) + m) % m }
