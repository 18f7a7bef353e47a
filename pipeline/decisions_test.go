package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// decisionSink records the decisions of an engine's closes.
type decisionSink struct {
	closes, decided, plans int
	ranked                 []int64  // buckets of the Ranked calls
	stores                 []string // of the last Ranked call
	last                   map[string]Decision
	top                    map[decision.Class][]decision.Ranked // of store A at the last close
}

var _ RankingSink = (*decisionSink)(nil)

func (s *decisionSink) DeadLetter(*Record, Reason, string) error { return nil }
func (s *decisionSink) Wants(int64) bool                         { return true }
func (s *decisionSink) Closed(c *Close) error {
	s.closes++
	if c.Decision == nil {
		return nil
	}
	s.decided++
	if c.Decision.HasPlan {
		s.plans++
	}
	d := *c.Decision
	if d.Stock != nil {
		st := *d.Stock
		d.Stock = &st
	}
	s.last[c.Series.ID()] = d
	return nil
}

func (s *decisionSink) Ranked(bucket int64, _ time.Time, stores []string, r *decision.Ranking) error {
	s.ranked = append(s.ranked, bucket)
	s.stores = append(s.stores[:0], stores...)
	s.top = map[decision.Class][]decision.Ranked{}
	for _, c := range decision.Classes {
		s.top[c] = r.Top(nil, "A", c)
	}
	return nil
}

// fixedCatalog is a Catalog of one series.
type fixedCatalog struct {
	series string
	policy decision.Policy
	stock  decision.Stock
}

func (f *fixedCatalog) Lookup(series string) (decision.Policy, decision.Stock, bool) {
	if series != f.series {
		return decision.Policy{}, decision.Stock{}, false
	}
	return f.policy, f.stock, true
}

// feedDays feeds one event per series and day, from day from to day to
// (exclusive), of a steady demand of about 10 a day, except A/up, which
// doubles from day 100. Offsets follow the day and the series.
func feedDays(t testing.TB, e *Engine, from, to int) {
	t.Helper()
	start := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	series := []string{"A/up", "A/flat", "A/other", "B/flat"}
	for d := from; d < to; d++ {
		for i, id := range series {
			qty := 8 + (d*7+i*3)%5
			if id == "A/up" && d >= 100 {
				qty *= 2
			}
			store, sku, _ := cutSlash(id)
			v := fmt.Sprintf(`{"event_id":"%s-%d","store":"%s","sku":"%s","ts":"%s","qty":%d}`,
				id, d, store, sku, start.AddDate(0, 0, d).Format(time.RFC3339), qty)
			off := int64(d*len(series) + i)
			if err := e.Process(&Record{Offset: off, Key: []byte(id), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func decisionConfig(cat Catalog) Config {
	cfg := testConfig()
	cfg.Decisions = Decisions{On: true, Top: 5, Catalog: cat,
		Replenish: decision.ReplenishConfig{Method: decision.NegBinom}}
	return cfg
}

// TestEngineDecides runs an engine with decisions on through 120 days of
// four series and checks that every close decides every series, that the
// sink gets one ranking per close, that the series that doubled ranks
// rising in its store, and that the catalog's policy and stock position
// shape the plan: its lead time and review period, and an order rounded
// up to the pack size.
func TestEngineDecides(t *testing.T) {
	cat := &fixedCatalog{series: "A/flat",
		policy: decision.Policy{LeadTime: 3, ReviewPeriod: 4, PackSize: 12},
		stock:  decision.Stock{OnHand: 5, OnOrder: 7}}
	s := &decisionSink{last: map[string]Decision{}}
	e, err := NewEngine(decisionConfig(cat), s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedDays(t, e, 0, 120)
	if s.closes == 0 || s.decided != s.closes || s.plans != s.closes {
		t.Fatalf("%d series closes, %d decided, %d planned", s.closes, s.decided, s.plans)
	}
	if want := int(e.Counters().Closes); len(s.ranked) != want {
		t.Errorf("%d rankings for %d closes", len(s.ranked), want)
	}
	if !slices.Equal(s.stores, []string{"A", "B"}) {
		t.Errorf("stores of the last close %q, want A and B", s.stores)
	}
	if got := s.top[decision.Rising]; len(got) != 1 || got[0].Series != "A/up" {
		t.Errorf("store A's rising series at the last close: %+v, want A/up alone", got)
	}
	if got := s.top[decision.Falling]; len(got) != 0 {
		t.Errorf("store A's falling series: %+v, want none", got)
	}
	flat := s.last["A/flat"]
	if flat.Policy.LeadTime != 3 || flat.Policy.ReviewPeriod != 4 || flat.Policy.ServiceLevel != 0.95 || flat.Plan.Cycle != 7 {
		t.Errorf("A/flat's policy %+v, cycle %d: want the catalog's lead time 3 and review period 4 with the default service level", flat.Policy, flat.Plan.Cycle)
	}
	if flat.Stock == nil || !flat.Plan.HasOrder {
		t.Fatalf("A/flat has no stock position or no order: %+v", flat)
	}
	short := flat.Plan.OrderUpTo - 12
	if o := flat.Plan.Order; math.Mod(o, 12) != 0 || o < short || o >= short+12 {
		t.Errorf("A/flat orders %v for a shortfall of %v: want the next multiple of the pack size 12", o, short)
	}
	if up := s.last["A/up"]; up.Stock != nil || up.Plan.HasOrder || up.Policy.LeadTime != 7 || up.Plan.Cycle != 14 {
		t.Errorf("A/up, without a catalog entry: %+v", up)
	}
}

// TestDecisionStateRestores commits an engine's decision state, restores
// it into a new engine and checks that both decide the following days
// alike: the per-series states and the partition's calibration survive
// a restart.
func TestDecisionStateRestores(t *testing.T) {
	st := newClockStore()
	run := func(e *Engine, s *decisionSink, from, to int) {
		e.BeginBatch()
		feedDays(t, e, from, to)
		if err := e.AppendState(st, 0, int64(from*4), int64(to*4), true); err != nil {
			t.Fatal(err)
		}
	}
	cfg := decisionConfig(nil)
	cfg.Decisions.Replenish = decision.ReplenishConfig{MinWeight: 20}
	whole := &decisionSink{last: map[string]Decision{}}
	a, err := NewEngine(cfg, whole)
	if err != nil {
		t.Fatal(err)
	}
	run(a, whole, 0, 90)
	cut := &decisionSink{last: map[string]Decision{}}
	b, err := NewEngine(cfg, cut)
	if err != nil {
		t.Fatal(err)
	}
	if next, err := b.Load(st, 0); err != nil || next != 360 {
		t.Fatalf("Load: next %d, %v", next, err)
	}
	if len(b.decider.states) != 4 {
		t.Fatalf("%d series decision states restored, want 4", len(b.decider.states))
	}
	run(a, whole, 90, 120)
	run(b, cut, 90, 120)
	for id, w := range whole.last {
		g := cut.last[id]
		if !w.Plan.Calibrated {
			t.Errorf("%s: the plan is not calibrated; the test does not reach the calibration", id)
		}
		if g.Plan.OrderUpTo != w.Plan.OrderUpTo || g.Plan.ReorderPoint != w.Plan.ReorderPoint || g.Trend != w.Trend || g.Plan.Calibrated != w.Plan.Calibrated {
			t.Errorf("%s: restored engine decided %+v / %+v, uninterrupted %+v / %+v", id, g.Trend, g.Plan, w.Trend, w.Plan)
		}
	}
}

func TestDecodeDecisionState(t *testing.T) {
	var sd seriesDecision
	tr, _ := sd.trend.AppendBinary(nil)
	good := append([]byte{decisionVersion, byte(len(tr))}, tr...)
	good, _ = sd.rep.AppendBinary(good)
	if _, err := decodeDecision(good); err != nil {
		t.Fatalf("good state: %v", err)
	}
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{9}, good[1:]...)},
		{"length past the end", []byte{decisionVersion, 200, 1}},
		{"truncated", good[:len(good)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeDecision(tc.v); !errors.Is(err, decision.ErrState) {
				t.Errorf("error %v, want one wrapping decision.ErrState", err)
			}
		})
	}
}

func TestDecisionsConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Decisions
		want string // part of the error, "" for none
	}{
		{"off ignores the rest", Decisions{Top: -1}, ""},
		{"defaults", Decisions{On: true}, ""},
		{"negative top", Decisions{On: true, Top: -1}, "Top -1"},
		{"cycle past the horizon", Decisions{On: true, Policy: decision.Policy{LeadTime: 20, ReviewPeriod: 10}}, "exceed the forecast horizon 28"},
		{"service level", Decisions{On: true, Policy: decision.Policy{ServiceLevel: 1.5}}, "ServiceLevel 1.5"},
		{"trend", Decisions{On: true, Trend: decision.TrendConfig{MinChange: 2}}, "MinChange 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Decisions = tc.d
			err := cfg.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// decideSetup returns an engine with decisions on after 120 days of the
// test series, series A/flat (which has a catalog entry and a stock
// position) and a forecast for it.
func decideSetup(t testing.TB) (*Engine, *window.Series, *model.Forecast) {
	cat := &fixedCatalog{series: "A/flat", policy: decision.Policy{PackSize: 6}, stock: decision.Stock{OnHand: 5}}
	cfg := decisionConfig(cat)
	e, err := NewEngine(cfg, &decisionSink{last: map[string]Decision{}})
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedDays(t, e, 0, 120)
	s := e.part.Series("A/flat")
	f := model.NewForecast(cfg.Model)
	nq := len(f.Levels)
	for h := range f.Mean {
		f.Mean[h] = 10
		f.Q[h*nq], f.Q[h*nq+1], f.Q[h*nq+2] = 6, 10, 14
	}
	return e, s, f
}

// TestDecideDoesNotAllocate checks that deciding a series at a close, its
// state sized, allocates nothing.
func TestDecideDoesNotAllocate(t *testing.T) {
	e, s, f := decideSetup(t)
	bucket := s.Closed()
	if n := testing.AllocsPerRun(100, func() {
		bucket++
		e.decider.decide(bucket, s, f)
	}); n != 0 {
		t.Errorf("decide allocates %v times per series", n)
	}
}

// BenchmarkDecide measures the decisions of one series at a close:
// building its input, classifying and ranking its trend, looking up its
// policy and stock, and planning its replenishment. The close is the
// same for every iteration, as for the series of one close; the
// calibration's once-per-close decay is left out.
func BenchmarkDecide(b *testing.B) {
	e, s, f := decideSetup(b)
	bucket := s.Closed() + 1
	e.decider.decide(bucket, s, f)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e.decider.decide(bucket, s, f)
	}
}
