package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// PromoConfig configures the promotion-lift estimator (see PromoLift).
// The zero value of each field means its default.
type PromoConfig struct {
	// Period is the number of slots of the season the estimator keeps
	// apart: a bucket's slot is its index modulo Period, so with daily
	// buckets and Period 7 every weekday has its own promotion frequency
	// and its own promotion and non-promotion levels. The default is 7.
	Period int
	// HalfLife is the number of observations of a slot after which an
	// observation's weight in that slot's levels and frequency has
	// halved. The default is 26 (half a year of weekly slots).
	HalfLife float64
	// Prior is the weight, in promotion buckets, of the pooled lift in a
	// series' lift: a series with n promotion buckets seen has the lift
	// exp((n·log raw + Prior·log pooled) / (n + Prior)). The default is 8.
	Prior float64
	// PoolHalfLife is the number of promotion observations, over all
	// series, after which one's weight in the pooled lift has halved.
	// The default is 20000.
	PoolHalfLife float64
	// MaxLift bounds a lift to [1/MaxLift, MaxLift]. The default is 10.
	MaxLift float64
	// Threshold is the promotion share from which a bucket counts as a
	// promotion bucket. The default is 0.5.
	Threshold float64
}

// DefaultPromoConfig returns the estimator's defaults, the one source of
// them.
func DefaultPromoConfig() PromoConfig {
	return PromoConfig{Period: 7, HalfLife: 26, Prior: 8, PoolHalfLife: 20000, MaxLift: 10, Threshold: 0.5}
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c PromoConfig) WithDefaults() PromoConfig {
	d := DefaultPromoConfig()
	if c.Period == 0 {
		c.Period = d.Period
	}
	if c.HalfLife == 0 {
		c.HalfLife = d.HalfLife
	}
	if c.Prior == 0 {
		c.Prior = d.Prior
	}
	if c.PoolHalfLife == 0 {
		c.PoolHalfLife = d.PoolHalfLife
	}
	if c.MaxLift == 0 {
		c.MaxLift = d.MaxLift
	}
	if c.Threshold == 0 {
		c.Threshold = d.Threshold
	}
	return c
}

// Validate checks the configuration, defaults applied.
func (c PromoConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Period < 1 || c.Period > 366:
		return fmt.Errorf("model: PromoConfig.Period %d outside [1, 366]", c.Period)
	case !(c.HalfLife >= 1 && c.HalfLife <= 1e6):
		return fmt.Errorf("model: PromoConfig.HalfLife %v outside [1, 1e6]", c.HalfLife)
	case !(c.Prior > 0 && c.Prior <= 1e6):
		return fmt.Errorf("model: PromoConfig.Prior %v outside (0, 1e6]", c.Prior)
	case !(c.PoolHalfLife >= 1 && c.PoolHalfLife <= 1e9):
		return fmt.Errorf("model: PromoConfig.PoolHalfLife %v outside [1, 1e9]", c.PoolHalfLife)
	case !(c.MaxLift > 1 && c.MaxLift <= 1000):
		return fmt.Errorf("model: PromoConfig.MaxLift %v outside (1, 1000]", c.MaxLift)
	case !(c.Threshold > 0 && c.Threshold <= 1):
		return fmt.Errorf("model: PromoConfig.Threshold %v outside (0, 1]", c.Threshold)
	}
	return nil
}

// ErrPromoState is wrapped by the errors of decoding a bad promotion
// state.
var ErrPromoState = errors.New("model: bad promotion state encoding")

// PromoLift estimates, online and per series, how much a promotion lifts
// sales, and turns any forecaster's forecast into one under a promotion
// plan. It is model-agnostic: it needs nothing from the forecaster but
// its forecast.
//
// Estimate. For every slot of the season (a weekday, with daily buckets)
// a series keeps exponentially weighted mean sales on promotion buckets
// and on other buckets, and their weights, whose ratio is the slot's
// promotion frequency π. The series' raw lift is the ratio of its
// promotion-weighted promotion levels to its non-promotion levels on the
// same slots, so a chain that promotes on weekdays only does not mistake
// the weekday pattern for a lift. The raw lift is shrunk in log space to
// the partition's pooled lift with the weight of Prior promotion
// buckets: a series that has never been on promotion gets the pooled
// lift, one with many promotions its own. The pooled lift is the ratio
// of the series' promotion levels to their non-promotion levels, each as
// above and summed, exponentially weighted, at every promotion bucket of
// the partition: each series' levels are compared as the series' own
// estimate compares them, equally old, so that series that grow, and
// new series, do not inflate it.
//
// De-mix and re-mix. A forecaster that does not know the future
// promotions forecasts, for a step in slot s, roughly the average over
// the slot's promotion history: f = b·(1 − π_s + π_s·L) for a baseline b
// without promotion and lift L. Apply divides that mixture out and
// multiplies the plan back in: the step's factor is L/(1 − π_s + π_s·L)
// on a planned promotion bucket and 1/(1 − π_s + π_s·L) on any other.
// The mixture is per slot because the published forecasters are seasonal
// (exponential smoothing with a weekly season, the learners with calendar
// inputs): their forecast for a Tuesday averages past Tuesdays. A
// forecaster without a season (ma28, tsb) averages over every slot, and
// the per-slot de-mix is then only approximate.
// The mean and every quantile of the step are scaled by the same factor,
// which keeps the quantiles ordered and non-negative and treats the
// promotion as a multiplicative change of scale (the relative spread of
// the forecast is kept).
//
// A PromoLift holds only configuration; the state lives in PromoState
// (per series) and PromoPool (per partition), which the caller owns. Its
// methods may be called concurrently on distinct states.
type PromoLift struct {
	cfg              PromoConfig
	decay, poolDecay float64
}

// NewPromoLift returns an estimator; zero fields of cfg mean their
// defaults.
func NewPromoLift(cfg PromoConfig) (*PromoLift, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &PromoLift{cfg: cfg, decay: math.Exp2(-1 / cfg.HalfLife), poolDecay: math.Exp2(-1 / cfg.PoolHalfLife)}, nil
}

// Config returns the estimator's configuration, defaults applied.
func (p *PromoLift) Config() PromoConfig { return p.cfg }

// promoSlot is one slot's promotion and non-promotion levels and weights.
type promoSlot struct {
	wp, mp, wn, mn float64
}

// PromoState is one series' promotion statistics. The zero value is a
// series without observations. Applied holds the factors the last Apply
// with a plan used, so that a forecast published under a plan can be
// taken back to the plain one; it is empty when no plan applied.
//
// A state also knows the last bucket it observed, so that a close
// replayed after a crash (a commit whose series states were written
// before its commit point was) is not counted twice, and the pool shares
// of its last promoShares promotion buckets, so that such a replay gives
// the pool, which is written with the commit point, exactly what the
// first pass gave it.
type PromoState struct {
	slots   []promoSlot
	Applied []float32
	// last is the index of the last bucket observed, valid when seen.
	last   int64
	seen   bool
	shares [promoShares]poolShare // ring of the latest promotion buckets' pool shares
	next   int                    // the ring's next slot
}

// promoShares is how many promotion buckets' pool shares a PromoState
// keeps: a replayed close is exact for the pool when it closed at most
// this many of a series' promotion buckets.
const promoShares = 4

// poolShare is what one series' promotion bucket idx added to the pool.
type poolShare struct {
	idx      int64
	num, den float64
}

// Last returns the index of the last bucket observed, and false when
// none was.
func (st *PromoState) Last() (int64, bool) { return st.last, st.seen }

// PromoPool is a partition's pooled promotion statistics. The zero value
// knows nothing, and pools to a lift of 1.
type PromoPool struct {
	num, den float64
}

// slot returns the slot of bucket idx.
func (p *PromoLift) slot(idx int64) int {
	n := int64(p.cfg.Period)
	return int(((idx % n) + n) % n)
}

// Observe adds a closed bucket of index idx with quantity qty and
// promotion share promo to a series' state and the pool. Non-finite or
// negative quantities count as 0. A bucket at or before the last one the
// state observed is a replay: the state keeps what it has, and the pool
// gets again what that bucket gave it, when the state still knows it.
func (p *PromoLift) Observe(st *PromoState, pool *PromoPool, idx int64, qty, promo float64) {
	if st.seen && idx <= st.last {
		for _, sh := range st.shares {
			if sh.idx == idx && pool != nil && (sh.num > 0 || sh.den > 0) {
				pool.num = pool.num*p.poolDecay + sh.num
				pool.den = pool.den*p.poolDecay + sh.den
			}
		}
		return
	}
	st.last, st.seen = idx, true
	if len(st.slots) != p.cfg.Period {
		st.slots = make([]promoSlot, p.cfg.Period)
	}
	if !(qty > 0) || math.IsInf(qty, 1) {
		qty = 0
	}
	sl := &st.slots[p.slot(idx)]
	sl.wp *= p.decay
	sl.wn *= p.decay
	if promo >= p.cfg.Threshold {
		sl.wp++
		sl.mp += (qty - sl.mp) / sl.wp
		if num, den, n := p.levels(st); pool != nil && n > 0 {
			pool.num = pool.num*p.poolDecay + num/n
			pool.den = pool.den*p.poolDecay + den/n
			st.shares[st.next] = poolShare{idx: idx, num: num / n, den: den / n}
			st.next = (st.next + 1) % promoShares
		}
		return
	}
	sl.wn++
	sl.mn += (qty - sl.mn) / sl.wn
}

// Pooled returns the pool's lift, 1 while it knows nothing.
func (p *PromoLift) Pooled(pool *PromoPool) float64 {
	if !(pool.den > 0) || !(pool.num > 0) {
		return 1
	}
	return p.clamp(pool.num / pool.den)
}

func (p *PromoLift) clamp(l float64) float64 {
	return min(max(l, 1/p.cfg.MaxLift), p.cfg.MaxLift)
}

// levels returns a series' promotion-weighted promotion and
// non-promotion levels, summed over the slots that have both, and the
// weight n of the promotions they rest on.
func (p *PromoLift) levels(st *PromoState) (num, den, n float64) {
	for _, sl := range st.slots {
		if sl.wp > 0 && sl.wn > 0 {
			num += sl.wp * sl.mp
			den += sl.wp * sl.mn
			n += sl.wp
		}
	}
	return num, den, n
}

// Lift returns a series' lift shrunk to the pool's, and the number of
// promotion buckets, weighted by age, it rests on.
func (p *PromoLift) Lift(st *PromoState, pool *PromoPool) (lift, n float64) {
	num, den, n := p.levels(st)
	prior := math.Log(p.Pooled(pool))
	if !(num > 0 && den > 0) {
		return math.Exp(prior), 0
	}
	raw := math.Log(p.clamp(num / den))
	return p.clamp(math.Exp((n*raw + p.cfg.Prior*prior) / (n + p.cfg.Prior))), n
}

// Frequency returns the promotion frequency π of bucket idx's slot.
func (p *PromoLift) Frequency(st *PromoState, idx int64) float64 {
	if len(st.slots) == 0 {
		return 0
	}
	sl := st.slots[p.slot(idx)]
	if sl.wp+sl.wn == 0 {
		return 0
	}
	return sl.wp / (sl.wp + sl.wn)
}

// Factors writes to dst, for the steps of a forecast made at the close of
// bucket origin (step h is bucket origin+1+h), the factor Apply scales
// step h by under the plan: plan[h] is whether bucket origin+1+h is a
// planned promotion. A step without a plan entry (h ≥ len(plan)) counts
// as no promotion. It returns dst.
func (p *PromoLift) Factors(dst []float64, st *PromoState, pool *PromoPool, origin int64, plan []bool) []float64 {
	lift, _ := p.Lift(st, pool)
	for h := range dst {
		pi := p.Frequency(st, origin+1+int64(h))
		g := 1 / (1 - pi + pi*lift)
		if h < len(plan) && plan[h] {
			g *= lift
		}
		dst[h] = g
	}
	return dst
}

// Scale writes f with each step h scaled by factors[h] to dst, reusing
// dst's storage, and returns dst. factors must have one entry per step of
// f; it panics otherwise.
func Scale(dst, f *Forecast, factors []float64) *Forecast {
	if len(factors) != len(f.Mean) {
		panic(fmt.Sprintf("model: Scale with %d factors for %d steps", len(factors), len(f.Mean)))
	}
	dst.CopyFrom(f)
	nq := len(f.Levels)
	for h, g := range factors {
		dst.Mean[h] *= g
		for j := range nq {
			dst.Q[h*nq+j] *= g
		}
	}
	return dst
}

// Encoding versions of a PromoState and a PromoPool. Version 1 of a
// PromoState, without the last bucket observed, is not read.
const (
	promoVersion     = 2
	promoPoolVersion = 1
)

// AppendBinary appends the state's encoding to dst: the version, the last
// bucket observed (zigzag varint, then 1 if seen), the ring's next slot
// and its promoShares shares (index as a zigzag varint, two float64s),
// the number of slots, each slot's four values as float64 bits, the
// number of applied factors and each as float32 bits.
func (st *PromoState) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, promoVersion)
	dst = binary.AppendVarint(dst, st.last)
	seen := byte(0)
	if st.seen {
		seen = 1
	}
	dst = append(dst, seen, byte(st.next))
	for _, sh := range st.shares {
		dst = binary.AppendVarint(dst, sh.idx)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(sh.num))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(sh.den))
	}
	dst = binary.AppendUvarint(dst, uint64(len(st.slots)))
	for _, sl := range st.slots {
		for _, v := range [4]float64{sl.wp, sl.mp, sl.wn, sl.mn} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(st.Applied)))
	for _, v := range st.Applied {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst, nil
}

// UnmarshalBinary decodes a state AppendBinary wrote.
func (st *PromoState) UnmarshalBinary(b []byte) error {
	if len(b) < 1 || b[0] != promoVersion {
		return fmt.Errorf("%w: version %v (this build reads %d)", ErrPromoState, b[:min(1, len(b))], promoVersion)
	}
	b = b[1:]
	var last int64
	var shares [promoShares]poolShare
	last, k := binary.Varint(b)
	if k <= 0 || len(b) < k+2 || b[k] > 1 || int(b[k+1]) >= promoShares {
		return fmt.Errorf("%w: bad last bucket or ring", ErrPromoState)
	}
	seen, next := b[k] == 1, int(b[k+1])
	b = b[k+2:]
	for i := range shares {
		idx, k := binary.Varint(b)
		if k <= 0 || len(b) < k+16 {
			return fmt.Errorf("%w: truncated pool shares", ErrPromoState)
		}
		num := math.Float64frombits(binary.LittleEndian.Uint64(b[k:]))
		den := math.Float64frombits(binary.LittleEndian.Uint64(b[k+8:]))
		if !(num >= 0) || !(den >= 0) || math.IsInf(num, 0) || math.IsInf(den, 0) {
			return fmt.Errorf("%w: pool share %v/%v", ErrPromoState, num, den)
		}
		shares[i] = poolShare{idx: idx, num: num, den: den}
		b = b[k+16:]
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 366 || uint64(len(b)-k) < n*32 {
		return fmt.Errorf("%w: %d slots in %d bytes", ErrPromoState, n, len(b))
	}
	b = b[k:]
	slots := make([]promoSlot, n)
	for i := range slots {
		var v [4]float64
		for j := range v {
			v[j] = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
			if !(v[j] >= 0) || math.IsInf(v[j], 0) {
				return fmt.Errorf("%w: slot %d value %v", ErrPromoState, i, v[j])
			}
		}
		slots[i] = promoSlot{wp: v[0], mp: v[1], wn: v[2], mn: v[3]}
	}
	m, k := binary.Uvarint(b)
	if k <= 0 || m > 10000 || uint64(len(b)-k) != m*4 {
		return fmt.Errorf("%w: %d factors in %d bytes", ErrPromoState, m, len(b))
	}
	b = b[k:]
	applied := make([]float32, m)
	for i := range applied {
		applied[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if m == 0 {
		applied = nil
	}
	st.slots, st.Applied = slots, applied
	st.last, st.seen, st.shares, st.next = last, seen, shares, next
	return nil
}

// AppendBinary appends the pool's encoding to dst.
func (pool *PromoPool) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, promoPoolVersion)
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(pool.num))
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(pool.den)), nil
}

// UnmarshalBinary decodes a pool AppendBinary wrote.
func (pool *PromoPool) UnmarshalBinary(b []byte) error {
	if len(b) != 17 || b[0] != promoPoolVersion {
		return fmt.Errorf("%w: pool of %d bytes", ErrPromoState, len(b))
	}
	num := math.Float64frombits(binary.LittleEndian.Uint64(b[1:]))
	den := math.Float64frombits(binary.LittleEndian.Uint64(b[9:]))
	if !(num >= 0) || !(den >= 0) || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return fmt.Errorf("%w: pool %v/%v", ErrPromoState, num, den)
	}
	pool.num, pool.den = num, den
	return nil
}
