package pipeline

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// Decisions configures the decisions an engine makes at every close from
// the published forecast: trend classes with a per-store ranking, and
// replenishment plans (see package decision). They are off unless On is
// set; zero fields of Trend, Replenish and Policy mean decision's
// defaults, and Replenish.Horizon is always the forecast horizon.
type Decisions struct {
	// On turns decisions on.
	On bool
	// Top is the number of series per class and store a close's ranking
	// keeps. Zero means 10.
	Top int
	// Policy is every series' inventory policy unless the catalog
	// overrides it.
	Policy decision.Policy
	// Trend configures the trend classifier.
	Trend decision.TrendConfig
	// Replenish configures the replenishment plans.
	Replenish decision.ReplenishConfig
	// Catalog, when set, overrides Policy per series and knows stock
	// positions. It is read at every close, outside the engine's
	// exactly-once state (see CatalogTable).
	Catalog Catalog
}

// Catalog answers what the catalog and inventory topics say of a series.
// Implementations are safe for concurrent use.
type Catalog interface {
	// Lookup returns the series' policy, its fields zero where the
	// catalog says nothing, and its stock position if one is known.
	Lookup(series string) (p decision.Policy, stock decision.Stock, known bool)
}

// defaultTop is the default of Decisions.Top.
const defaultTop = 10

// validate checks the decision configuration against a forecast horizon.
func (d *Decisions) validate(horizon int) error {
	if !d.On {
		return nil
	}
	if d.Top < 0 {
		return fmt.Errorf("pipeline: Decisions.Top %d is negative", d.Top)
	}
	if err := d.Policy.WithDefaults().Validate(horizon); err != nil {
		return fmt.Errorf("pipeline: Decisions.Policy: %w", err)
	}
	if _, err := decision.NewTrends(d.Trend); err != nil {
		return fmt.Errorf("pipeline: Decisions.Trend: %w", err)
	}
	rc := d.Replenish
	rc.Horizon = horizon
	if _, err := decision.NewReplenisher(rc); err != nil {
		return fmt.Errorf("pipeline: Decisions.Replenish: %w", err)
	}
	return nil
}

// Decision is what the engine decided for one series at a close: its
// trend and, when HasPlan, its replenishment plan. It is valid only during
// Sink.Closed.
type Decision struct {
	// Trend is the series' trend; Age the number of buckets since its
	// first.
	Trend decision.Trend
	Age   int64
	// Policy is the series' policy, catalog overrides and defaults
	// applied; Stock its stock position, nil when unknown.
	Policy decision.Policy
	Stock  *decision.Stock
	// Plan is the series' replenishment, valid when HasPlan: a policy
	// whose cycle exceeds the series' forecast has none.
	Plan    decision.Plan
	HasPlan bool
	// Method and Levels are the replenisher's (see decision.PlanRecord).
	Method decision.Method
	Levels []float64

	stock decision.Stock // what Stock points to
}

// RankingSink is a Sink that also takes each close's trend ranking, once
// every series of the close has been handed to Closed. The live task
// publishes it per store; backtests need not implement it.
type RankingSink interface {
	Sink
	// Ranked is called after a close with decisions, with the stores of
	// the series that closed, sorted, ranked series or not. Stores and
	// the ranking are valid only during the call; Ranking.Top copies.
	Ranked(bucket int64, generatedAt time.Time, stores []string, r *decision.Ranking) error
}

// decider makes an engine's decisions and keeps their state: per series a
// trend state and a replenishment state, per partition the replenisher's
// pooled calibration.
type decider struct {
	cfg     *Decisions
	trends  *decision.Trends
	rep     *decision.Replenisher
	ranking *decision.Ranking
	states  map[*window.Series]*seriesDecision
	stores  map[string]struct{} // of the close's series
	sorted  []string            // stores, sorted, for Ranked
	history int
	closed  bool // a close was decided since the last commit
	in      model.Input
	dec     Decision
}

// seriesDecision is one series' decision state.
type seriesDecision struct {
	trend decision.TrendState
	rep   decision.ReplenishState
}

// decisionVersion is the encoding version of a series' decision state.
const decisionVersion = 1

func newDecider(cfg *Decisions, horizon int) (*decider, error) {
	if !cfg.On {
		return nil, nil
	}
	trends, err := decision.NewTrends(cfg.Trend)
	if err != nil {
		return nil, err
	}
	rc := cfg.Replenish
	rc.Horizon = horizon
	rep, err := decision.NewReplenisher(rc)
	if err != nil {
		return nil, err
	}
	top := cfg.Top
	if top == 0 {
		top = defaultTop
	}
	return &decider{
		cfg: cfg, trends: trends, rep: rep,
		ranking: decision.NewRanking(top),
		states:  map[*window.Series]*seriesDecision{},
		stores:  map[string]struct{}{},
		history: max(trends.History(), horizon),
		dec:     Decision{Method: rc.Method, Levels: rep.Config().Levels},
	}, nil
}

// begin starts a close.
func (d *decider) begin() {
	d.ranking.Reset()
	clear(d.stores)
	d.closed = true
}

// closeStores returns the stores of the close's series, sorted.
func (d *decider) closeStores() []string {
	d.sorted = d.sorted[:0]
	for s := range d.stores {
		d.sorted = append(d.sorted, s)
	}
	slices.Sort(d.sorted)
	return d.sorted
}

// decide classifies and plans series s at the close of bucket from its
// published forecast f, and ranks its trend.
func (d *decider) decide(bucket int64, s *window.Series, f *model.Forecast) *Decision {
	st := d.states[s]
	if st == nil {
		st = new(seriesDecision)
		d.states[s] = st
	}
	n := min(s.Len(), d.history)
	in := &d.in
	in.Y, in.Price, in.Promo = in.Y[:0], in.Price[:0], in.Promo[:0]
	for i := s.Len() - n; i < s.Len(); i++ {
		b := s.At(i)
		in.Y = append(in.Y, b.Qty)
		in.Price = append(in.Price, b.Price)
		in.Promo = append(in.Promo, b.Promo)
	}
	dec := &d.dec
	dec.Age = bucket - s.First() + 1
	dec.Trend = d.trends.Classify(&st.trend, in, dec.Age, f)
	d.ranking.Add(s.ID(), dec.Trend)
	store, _, _ := strings.Cut(s.ID(), "/")
	if _, ok := d.stores[store]; !ok {
		d.stores[store] = struct{}{}
	}

	dec.Policy, dec.Stock = d.cfg.Policy, nil
	if d.cfg.Catalog != nil {
		over, pos, known := d.cfg.Catalog.Lookup(s.ID())
		dec.Policy = overlay(dec.Policy, over)
		if known {
			dec.stock = pos
			dec.Stock = &dec.stock
		}
	}
	dec.Policy = dec.Policy.WithDefaults()
	dec.HasPlan = d.rep.Update(&st.rep, bucket, in.Y, f, dec.Policy, dec.Stock, &dec.Plan) == nil
	return dec
}

// overlay returns base with the fields over sets replaced.
func overlay(base, over decision.Policy) decision.Policy {
	if over.LeadTime != 0 {
		base.LeadTime = over.LeadTime
	}
	if over.ReviewPeriod != 0 {
		base.ReviewPeriod = over.ReviewPeriod
	}
	if over.ServiceLevel != 0 {
		base.ServiceLevel = over.ServiceLevel
	}
	if over.PackSize != 0 {
		base.PackSize = over.PackSize
	}
	return base
}

// appendState adds the decision states of the dirty series as ordinary
// writes and, after a close, the partition's calibration as a final write:
// it belongs with the commit point, so a replay never scores a close's
// errors twice.
func (d *decider) appendState(w Writes, p int32, dirty []*window.Series) {
	var k, val, tr []byte
	for _, s := range dirty {
		st := d.states[s]
		if st == nil {
			continue
		}
		tr, _ = st.trend.AppendBinary(tr[:0])
		val = append(val[:0], decisionVersion)
		val = binary.AppendUvarint(val, uint64(len(tr)))
		val = append(val, tr...)
		val, _ = st.rep.AppendBinary(val)
		w.Set(key(k[:0], p, kindDecision, []byte(s.ID())), val)
	}
	if d.closed {
		val, _ = d.rep.AppendBinary(val[:0])
		w.SetFinal(key(k[:0], p, kindCalib, nil), val, 0)
		d.closed = false
	}
}

// load restores partition p's calibration.
func (d *decider) load(st Store, p int32) error {
	_, err := st.Get(key(nil, p, kindCalib, nil), d.rep.UnmarshalBinary)
	if err != nil {
		return fmt.Errorf("pipeline: partition %d's replenishment calibration: %w", p, err)
	}
	return nil
}

// loadSeries restores the decision state of series s of partition p.
func (d *decider) loadSeries(st Store, p int32, s *window.Series) error {
	_, err := st.Get(key(nil, p, kindDecision, []byte(s.ID())), func(v []byte) error {
		sd, err := decodeDecision(v)
		if err == nil {
			d.states[s] = sd
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline: decision state of series %q of partition %d: %w", s.ID(), p, err)
	}
	return nil
}

// decodeDecision decodes a series' decision state written by appendState.
func decodeDecision(v []byte) (*seriesDecision, error) {
	if len(v) < 1 || v[0] != decisionVersion {
		return nil, fmt.Errorf("%w: decision state version %d (this build reads %d)", decision.ErrState, firstByte(v), decisionVersion)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n > uint64(len(v)-1-k) {
		return nil, fmt.Errorf("%w: decision state of %d bytes is truncated", decision.ErrState, len(v))
	}
	tr := v[1+k : 1+k+int(n)]
	sd := new(seriesDecision)
	if err := sd.trend.UnmarshalBinary(tr); err != nil {
		return nil, err
	}
	if err := sd.rep.UnmarshalBinary(v[1+k+int(n):]); err != nil {
		return nil, err
	}
	return sd, nil
}

// forget drops the decision state of a series leaving memory.
func (d *decider) forget(s *window.Series) { delete(d.states, s) }
