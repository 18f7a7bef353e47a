package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// Promotions configures the promotion what-if: every engine with it on
// estimates each series' promotion lift online (model.PromoLift) from the
// buckets it closes, keeping the estimate in its exactly-once state, and,
// where Plans knows a series' promotion plan for the forecast horizon,
// publishes the forecast under that plan (Close.Planned). Off by default.
type Promotions struct {
	// On turns the lift estimate on.
	On bool
	// Lift configures the estimator; a zero Period means the buckets'
	// seasonal period (window.Spec.Period).
	Lift model.PromoConfig
	// Plans, when set, says which future buckets of a series are planned
	// promotions. It is read at every close, outside the engine's
	// exactly-once state (see PlanTable). Nil estimates lifts without
	// applying plans.
	Plans Plans
}

// Plans answers what promotions are planned for a series.
// Implementations are safe for concurrent use.
type Plans interface {
	// Plan sets promo[h] to whether bucket origin+1+h of the series is a
	// planned promotion, for every h of promo, and reports whether the
	// series' plan is known: an unknown plan leaves the forecast as the
	// forecaster made it, a known plan without promotions takes the
	// promotions the forecaster expects from history out of it.
	Plan(series string, origin int64, promo []bool) bool
}

// validate checks the promotion configuration.
func (p *Promotions) validate() error {
	if !p.On {
		return nil
	}
	if err := p.Lift.Validate(); err != nil {
		return fmt.Errorf("pipeline: Promotions.Lift: %w", err)
	}
	return nil
}

// promoter keeps an engine's promotion lifts: per series a state, per
// partition the pool, and applies the plans to the published forecasts.
type promoter struct {
	lift    *model.PromoLift
	plans   Plans
	states  map[*window.Series]*model.PromoState
	pool    model.PromoPool
	closed  bool // a close changed the pool since the last commit
	plan    []bool
	factors []float64
	planned model.Forecast
}

// newPromoLift returns the lift estimator of cfg for buckets of spec. Its
// slots default to the buckets' seasonal period when that is a day's
// hours or a week's days; weekly buckets get one slot, since a slot per
// week of the year would see each week once a year and, with a regular
// promotion schedule, never both a promotion and a plain bucket.
func newPromoLift(cfg *Promotions, spec window.Spec) (*model.PromoLift, error) {
	lc := cfg.Lift
	if lc.Period == 0 {
		lc.Period = spec.Period()
		if lc.Period > 24 {
			lc.Period = 1
		}
	}
	lift, err := model.NewPromoLift(lc)
	if err != nil {
		return nil, fmt.Errorf("pipeline: Promotions.Lift: %w", err)
	}
	return lift, nil
}

// newPromoter returns the engine's promoter, nil when promotions are
// off.
func newPromoter(cfg *Promotions, spec window.Spec, horizon int) (*promoter, error) {
	if !cfg.On {
		return nil, nil
	}
	lift, err := newPromoLift(cfg, spec)
	if err != nil {
		return nil, err
	}
	return &promoter{lift: lift, plans: cfg.Plans, states: map[*window.Series]*model.PromoState{},
		plan: make([]bool, horizon), factors: make([]float64, horizon)}, nil
}

// state returns series s's state, creating it.
func (m *promoter) state(s *window.Series) *model.PromoState {
	st := m.states[s]
	if st == nil {
		st = new(model.PromoState)
		m.states[s] = st
	}
	return st
}

// observe adds bucket idx, which series s closed, to its lift estimate.
// A series restored ahead of its partition (a replayed commit whose
// series states were written) is handed closes it has already made: the
// bucket is then looked up in its history, and the estimator counts it
// once (model.PromoLift.Observe).
func (m *promoter) observe(idx int64, s *window.Series) {
	back := s.Closed() - idx
	if back < 0 || back >= int64(s.Len()) {
		return
	}
	b := s.At(s.Len() - 1 - int(back))
	st := m.state(s)
	st.Applied = st.Applied[:0]
	m.lift.Observe(st, &m.pool, idx, b.Qty, float64(b.Promo))
	m.closed = true
}

// apply returns forecast f of series s made at the close of bucket under
// the series' plan, or nil when its plan is unknown. The result is valid
// until the next apply.
func (m *promoter) apply(bucket int64, s *window.Series, f *model.Forecast) *model.Forecast {
	st := m.state(s)
	if m.plans == nil {
		return nil
	}
	h := len(f.Mean)
	if len(m.plan) < h {
		m.plan, m.factors = make([]bool, h), make([]float64, h)
	}
	plan := m.plan[:h]
	clear(plan)
	if !m.plans.Plan(s.ID(), bucket, plan) {
		return nil
	}
	g := m.lift.Factors(m.factors[:h], st, &m.pool, bucket, plan)
	for _, v := range g {
		st.Applied = append(st.Applied, float32(v))
	}
	return model.Scale(&m.planned, f, g)
}

// appendState adds the promotion states of the dirty series as ordinary
// writes and, after a close, the partition's pool as a final write, with
// the commit point, so a replayed close never counts a bucket twice.
func (m *promoter) appendState(w Writes, p int32, dirty []*window.Series) {
	var k, val []byte
	for _, s := range dirty {
		st := m.states[s]
		if st == nil {
			continue
		}
		val, _ = st.AppendBinary(val[:0])
		w.Set(key(k[:0], p, kindPromo, []byte(s.ID())), val)
	}
	if m.closed {
		val, _ = m.pool.AppendBinary(val[:0])
		w.SetFinal(key(k[:0], p, kindPromoPool, nil), val, 0)
		m.closed = false
	}
}

// load restores partition p's pool.
func (m *promoter) load(st Store, p int32) error {
	if _, err := st.Get(key(nil, p, kindPromoPool, nil), m.pool.UnmarshalBinary); err != nil {
		return fmt.Errorf("pipeline: partition %d's promotion pool: %w", p, err)
	}
	return nil
}

// loadSeries restores the promotion state of series s of partition p.
func (m *promoter) loadSeries(st Store, p int32, s *window.Series) error {
	_, err := st.Get(key(nil, p, kindPromo, []byte(s.ID())), func(v []byte) error {
		ps := new(model.PromoState)
		if err := ps.UnmarshalBinary(v); err != nil {
			return err
		}
		m.states[s] = ps
		return nil
	})
	if err != nil {
		return fmt.Errorf("pipeline: promotion state of series %q of partition %d: %w", s.ID(), p, err)
	}
	return nil
}

// forget drops the state of a series leaving memory.
func (m *promoter) forget(s *window.Series) { delete(m.states, s) }

// Lift is what the promotion state of a series says, for the what-if.
type Lift struct {
	// Lift is the series' estimated lift, shrunk to the pool's; Pooled is
	// the pool's; Promotions the promotion buckets, weighted by age, the
	// series' own estimate rests on.
	Lift, Pooled, Promotions float64
	// Applied holds the factors the published forecast's steps were
	// scaled by under the series' plan at the last close; empty when no
	// plan applied.
	Applied []float64
}

// WhatIf is a forecast under a promotion plan next to the baseline.
type WhatIf struct {
	Lift
	// Baseline is the forecast without any promotion and Planned the one
	// under the plan; Uplift is Planned's mean minus Baseline's, per step,
	// and TotalUplift its sum.
	Baseline, Planned *model.Forecast
	Uplift            []float64
	TotalUplift       float64
}

// ErrCloseInFlight is returned, wrapped, by PromoWhatIf when a series'
// latest forecast and its promotion state are of different closes, as
// while a large commit is written in several transactions: asked again,
// the answer comes.
var ErrCloseInFlight = errors.New("pipeline: a close of the series is being committed")

// PromoWhatIf computes the forecast of a series under plan (plan[h]: is
// bucket origin+1+h a promotion) from its latest published forecast f,
// made at the close of bucket origin, and the promotion state the engines
// stored: the series' own (found false when it has none yet) and its
// partition's pool. Nothing is written. cfg is the engines' Promotions
// configuration and spec their buckets'.
func PromoWhatIf(st Store, p int32, id string, cfg Promotions, spec window.Spec, origin int64, f *model.Forecast, plan []bool) (*WhatIf, bool, error) {
	lift, err := newPromoLift(&cfg, spec)
	if err != nil {
		return nil, false, err
	}
	var pool model.PromoPool
	if _, err := st.Get(key(nil, p, kindPromoPool, nil), pool.UnmarshalBinary); err != nil {
		return nil, false, fmt.Errorf("pipeline: partition %d's promotion pool: %w", p, err)
	}
	var ps model.PromoState
	found, err := st.Get(key(nil, p, kindPromo, []byte(id)), ps.UnmarshalBinary)
	if err != nil || !found {
		return nil, false, err
	}
	if last, ok := ps.Last(); !ok || last != origin {
		// A commit split over several transactions is being written: the
		// plan applied to this forecast is not the one the state holds.
		return nil, false, fmt.Errorf("%w: series %q's forecast is of bucket %d, its promotion state of bucket %d", ErrCloseInFlight, id, origin, last)
	}
	h := len(f.Mean)
	// Take the published forecast back to the forecaster's, if a plan
	// was applied to it.
	plain := f
	if len(ps.Applied) == h {
		undo := make([]float64, h)
		for i, g := range ps.Applied {
			if g > 0 && !math.IsInf(float64(g), 0) {
				undo[i] = 1 / float64(g)
			}
		}
		plain = model.Scale(&model.Forecast{}, f, undo)
	}
	w := &WhatIf{Uplift: make([]float64, h)}
	w.Lift.Lift, w.Promotions = lift.Lift(&ps, &pool)
	w.Pooled = lift.Pooled(&pool)
	for _, g := range ps.Applied {
		w.Applied = append(w.Applied, float64(g))
	}
	w.Baseline = model.Scale(&model.Forecast{}, plain, lift.Factors(make([]float64, h), &ps, &pool, origin, nil))
	w.Planned = model.Scale(&model.Forecast{}, plain, lift.Factors(make([]float64, h), &ps, &pool, origin, plan))
	for i := range w.Uplift {
		w.Uplift[i] = w.Planned.Mean[i] - w.Baseline.Mean[i]
		w.TotalUplift += w.Uplift[i]
	}
	return w, true, nil
}

// PromoLifts calls fn with the estimated lift of every series in memory
// and the promotion buckets, weighted by age, its own estimate rests on;
// nothing when promotions are off.
func (e *Engine) PromoLifts(fn func(series string, lift, promotions float64)) {
	if e.promo == nil {
		return
	}
	for s, st := range e.promo.states {
		l, n := e.promo.lift.Lift(st, &e.promo.pool)
		fn(s.ID(), l, n)
	}
}

// PooledLift returns the partition's pooled promotion lift, 1 when
// promotions are off or none was seen.
func (e *Engine) PooledLift() float64 {
	if e.promo == nil {
		return 1
	}
	return e.promo.lift.Pooled(&e.promo.pool)
}

// PlanRecord is the value of a record on the plans topic, keyed by series
// id "STORE/SKU": the series' planned promotions, and the body of a
// what-if request. schema/plans.schema.json describes it. Promo lists the
// promotion buckets, each as a date (YYYY-MM-DD, the day's bucket start
// in the buckets' time zone) or an RFC 3339 time inside the bucket; every
// other bucket is planned without a promotion. An empty value (a
// tombstone) drops the series' plan, which makes it unknown again.
type PlanRecord struct {
	Promo []string `json:"promo"`
}

// maxPlanBytes bounds a plans record's value; maxPlanBuckets its
// promotion buckets.
const (
	maxPlanBytes   = 32768
	maxPlanBuckets = 1000
)

// DecodePlan decodes a plans record into the sorted, distinct indices of
// its promotion buckets in spec. A bad record is an *InvalidError whose
// reason and detail go to the dead-letter topic, like a bad sale.
func DecodePlan(key, value []byte, spec window.Spec) ([]int64, error) {
	var rec PlanRecord
	if err := decodeSide(key, value, maxPlanBytes, &rec); err != nil {
		return nil, err
	}
	if rec.Promo == nil {
		return nil, &InvalidError{Reason: ReasonMissingField, Detail: "promo is missing"}
	}
	if len(rec.Promo) > maxPlanBuckets {
		return nil, &InvalidError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("%d promotion buckets, the limit is %d", len(rec.Promo), maxPlanBuckets)}
	}
	idx := make([]int64, 0, len(rec.Promo))
	for _, s := range rec.Promo {
		t, err := time.ParseInLocation(time.DateOnly, s, spec.Location())
		if err != nil {
			if t, err = time.Parse(time.RFC3339, s); err != nil {
				return nil, &InvalidError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("promo %q is neither a date nor an RFC 3339 time", s)}
			}
		}
		idx = append(idx, spec.Index(t))
	}
	slices.Sort(idx)
	return slices.Compact(idx), nil
}

// PlanTable holds the latest plan of every series, as read from the
// compacted plans topic, and answers the engines' lookups (it implements
// Plans).
//
// Like CatalogTable, the table is not part of a partition's exactly-once
// state: it is a view of a compacted topic that every instance reads whole
// at start-up and then follows, so a close replayed after a crash applies
// the plan as it is then. The lift estimates the plans are applied with
// are exactly-once state.
//
// A PlanTable is safe for concurrent use: the driver following the topic
// writes it, the partitions' engines read it.
type PlanTable struct {
	spec  window.Spec
	mu    sync.RWMutex
	plans map[string][]int64
}

var _ Plans = (*PlanTable)(nil)

// NewPlanTable returns an empty table for buckets of spec.
func NewPlanTable(spec window.Spec) *PlanTable {
	return &PlanTable{spec: spec, plans: map[string][]int64{}}
}

// Apply applies a plans record: an empty value deletes the series' plan.
// A bad record changes nothing and is an *InvalidError.
func (t *PlanTable) Apply(key, value []byte) error {
	if len(value) == 0 {
		t.mu.Lock()
		delete(t.plans, string(key))
		t.mu.Unlock()
		return nil
	}
	idx, err := DecodePlan(key, value, t.spec)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.plans[string(key)] = idx
	t.mu.Unlock()
	return nil
}

// Plan implements Plans.
func (t *PlanTable) Plan(series string, origin int64, promo []bool) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	idx, ok := t.plans[series]
	if !ok {
		return false
	}
	FillPlan(promo, origin, idx)
	return true
}

// FillPlan sets promo[h] to whether bucket origin+1+h is among the sorted
// promotion buckets idx.
func FillPlan(promo []bool, origin int64, idx []int64) {
	for h := range promo {
		_, promo[h] = slices.BinarySearch(idx, origin+1+int64(h))
	}
}

// Len returns the number of series with a plan.
func (t *PlanTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.plans)
}
