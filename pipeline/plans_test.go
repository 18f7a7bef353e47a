package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/internal/schematest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// promoDay reports whether day d is a promotion day of the test series:
// the Tuesdays of every other week.
func promoDay(d int64) bool { return d%7 == 1 && (d/7)%2 == 0 }

// promoDays is the Plans of the test: the series "A/promo" has promoDay
// as its plan; every other series' plan is unknown.
type promoDays struct{ day0 int64 }

func (p promoDays) Plan(series string, origin int64, promo []bool) bool {
	if series != "A/promo" {
		return false
	}
	for h := range promo {
		promo[h] = promoDay(origin + 1 + int64(h) - p.day0)
	}
	return true
}

// lastCloses keeps a copy of the last close of every series.
type lastCloses struct {
	planned, plain map[string]*model.Forecast
	bucket         int64
}

func (s *lastCloses) DeadLetter(*Record, Reason, string) error { return nil }
func (s *lastCloses) Wants(int64) bool                         { return true }
func (s *lastCloses) Closed(c *Close) error {
	s.bucket = c.Bucket
	id := c.Series.ID()
	s.plain[id] = new(model.Forecast)
	s.plain[id].CopyFrom(c.Forecasts[c.Published])
	delete(s.planned, id)
	if c.Planned != nil {
		s.planned[id] = new(model.Forecast)
		s.planned[id].CopyFrom(c.PublishedForecast())
	}
	return nil
}

var start2024 = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

// feedPromo feeds days [from, to) of two series selling 10 a day, twice
// that on promotion days: "A/promo", whose plan is known, and "B/plain",
// with the same sales and promotions but no known plan. It commits after
// every day into st when st is not nil.
func feedPromo(t testing.TB, e *Engine, st memStore, from, to int) {
	t.Helper()
	series := []string{"A/promo", "B/plain"}
	for d := from; d < to; d++ {
		for i, id := range series {
			qty, promo := 10, promoDay(int64(d))
			if promo {
				qty = 20
			}
			store, sku, _ := cutSlash(id)
			v := fmt.Sprintf(`{"event_id":"%s-%d","store":"%s","sku":"%s","ts":"%s","qty":%d,"promo":%v}`,
				id, d, store, sku, start2024.AddDate(0, 0, d).Format(time.RFC3339), qty, promo)
			off := int64(d*len(series) + i)
			if err := e.Process(&Record{Offset: off, Key: []byte(id), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
		if st != nil {
			var w writes
			off := int64(d * len(series))
			if err := e.AppendState(&w, 0, off, off+int64(len(series)), false); err != nil {
				t.Fatal(err)
			}
			st.apply(w.ahead)
			st.apply(w.final)
		}
	}
}

func promoConfig() Config {
	cfg := testConfig()
	cfg.Published = model.NameETS
	spec := mustSpec()
	cfg.Promotions = Promotions{On: true, Plans: promoDays{day0: spec.Index(start2024)}}
	return cfg
}

// TestEnginePublishesUnderPlan checks that an engine with promotions on
// publishes, for a series whose plan is known, its forecaster's forecast
// de-mixed and re-mixed under the plan: a planned promotion step lifted
// by the estimated lift against a step of the same weekday without one,
// and no change for a series whose plan is unknown.
func TestEnginePublishesUnderPlan(t *testing.T) {
	s := &lastCloses{planned: map[string]*model.Forecast{}, plain: map[string]*model.Forecast{}}
	e, err := NewEngine(promoConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedPromo(t, e, nil, 0, 200)
	if s.planned["B/plain"] != nil {
		t.Error("series with an unknown plan published under a plan")
	}
	pl, f := s.planned["A/promo"], s.plain["A/promo"]
	if pl == nil {
		t.Fatal("series with a known plan not published under it")
	}
	if got, want := e.Counters().Planned, e.Counters().Forecasts/2; got < want-2 || got > want {
		t.Errorf("Planned %d, want about half of %d forecasts", got, e.Counters().Forecasts)
	}
	day0 := mustSpec().Index(start2024)
	var promoRatio, plainRatio []float64
	for h := range f.Mean {
		d := s.bucket + 1 + int64(h) - day0
		if d%7 != 1 {
			continue
		}
		r := pl.Mean[h] / f.Mean[h]
		if promoDay(d) {
			promoRatio = append(promoRatio, r)
		} else {
			plainRatio = append(plainRatio, r)
		}
		if q := pl.Q[3*h+1] / f.Q[3*h+1]; math.Abs(q-r) > 1e-9 {
			t.Errorf("step %d: median scaled by %v, mean by %v", h, q, r)
		}
	}
	if len(promoRatio) == 0 || len(plainRatio) == 0 {
		t.Fatalf("the horizon holds %d planned and %d unplanned Tuesdays", len(promoRatio), len(plainRatio))
	}
	if lift := promoRatio[0] / plainRatio[0]; math.Abs(lift-2) > 0.02 {
		t.Errorf("planned Tuesday over unplanned Tuesday %.4f, want the lift 2", lift)
	}
	// Half the Tuesdays are promotions: the seasonal forecaster's Tuesday
	// mixes 10 and 20, the baseline without a promotion is back at 10.
	if base := f.Mean[firstStep(s.bucket, day0, f.Horizon(), false)] * plainRatio[0]; math.Abs(base-10) > 1 {
		t.Errorf("de-mixed Tuesday %.3f, want about 10", base)
	}
}

// firstStep returns the first step of a forecast from bucket that is a
// Tuesday with (promo) or without a promotion.
func firstStep(bucket, day0 int64, h int, promo bool) int {
	for i := range h {
		d := bucket + 1 + int64(i) - day0
		if d%7 == 1 && promoDay(d) == promo {
			return i
		}
	}
	return -1
}

// TestPromoStateExactlyOnce checks that the promotion state is part of
// the committed state: an engine restarted from its store midway ends
// with the same promotion state and pool as one that never stopped, and
// that the what-if read from the store recovers the lift.
func TestPromoStateExactlyOnce(t *testing.T) {
	whole, parts := memStore{}, memStore{}
	s := &lastCloses{planned: map[string]*model.Forecast{}, plain: map[string]*model.Forecast{}}
	e, err := NewEngine(promoConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedPromo(t, e, whole, 0, 160)

	first, err := NewEngine(promoConfig(), &lastCloses{planned: map[string]*model.Forecast{}, plain: map[string]*model.Forecast{}})
	if err != nil {
		t.Fatal(err)
	}
	first.BeginBatch()
	feedPromo(t, first, parts, 0, 100)
	second, err := NewEngine(promoConfig(), &lastCloses{planned: map[string]*model.Forecast{}, plain: map[string]*model.Forecast{}})
	if err != nil {
		t.Fatal(err)
	}
	if next, err := second.Load(parts, 0); err != nil || next != 200 {
		t.Fatalf("Load: next %d, %v; want 200", next, err)
	}
	second.BeginBatch()
	feedPromo(t, second, parts, 100, 160)

	n := 0
	for _, k := range []kind{kindPromo, kindPromoPool} {
		err := whole.Scan(kindPrefix(nil, 0, k), func(key, v []byte) error {
			n++
			if w := parts[string(key)]; !bytes.Equal(w, v) {
				return fmt.Errorf("key %q: restarted %x, uninterrupted %x", key, w, v)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	if n != 3 {
		t.Errorf("%d promotion keys stored, want 2 series and the pool", n)
	}

	// The what-if of a promotion on the first step's weekday.
	pub := s.planned["A/promo"]
	plan := make([]bool, pub.Horizon())
	step := firstStep(s.bucket, mustSpec().Index(start2024), pub.Horizon(), false)
	plan[step] = true
	w, found, err := PromoWhatIf(parts, 0, "A/promo", promoConfig().Promotions, mustSpec(), s.bucket, pub, plan)
	if err != nil || !found {
		t.Fatalf("PromoWhatIf: found %v, %v", found, err)
	}
	if math.Abs(w.Lift.Lift-2) > 0.02 || len(w.Applied) != pub.Horizon() {
		t.Errorf("lift %v with %d applied factors, want 2 and %d", w.Lift.Lift, len(w.Applied), pub.Horizon())
	}
	for h := range plan {
		want := 0.0
		if plan[h] {
			want = w.Baseline.Mean[h] * (w.Lift.Lift - 1)
		}
		if math.Abs(w.Uplift[h]-want) > 1e-6 {
			t.Errorf("step %d: uplift %v, want %v", h, w.Uplift[h], want)
		}
	}
	if math.Abs(w.Baseline.Mean[step]-10) > 1 || math.Abs(w.TotalUplift-w.Uplift[step]) > 1e-9 {
		t.Errorf("baseline Tuesday %v (want about 10), total uplift %v of step %v", w.Baseline.Mean[step], w.TotalUplift, w.Uplift[step])
	}
	if _, found, err := PromoWhatIf(parts, 0, "C/none", promoConfig().Promotions, mustSpec(), s.bucket, pub, plan); found || err != nil {
		t.Errorf("unknown series: found %v, %v", found, err)
	}
	// A forecast of the close before the state's, as read while a split
	// commit is half written: its applied factors are not the state's.
	if _, _, err := PromoWhatIf(parts, 0, "A/promo", promoConfig().Promotions, mustSpec(), s.bucket-1, pub, plan); !errors.Is(err, ErrCloseInFlight) {
		t.Errorf("forecast and state of different closes: %v, want ErrCloseInFlight", err)
	}
}

// mustSpec returns the daily UTC buckets of testConfig.
func mustSpec() window.Spec {
	spec, err := window.NewSpec(window.Day, time.UTC)
	if err != nil {
		panic(err)
	}
	return spec
}

// TestPlanTable checks the plans topic's decoding, its schema and the
// table's lookups.
func TestPlanTable(t *testing.T) {
	spec := mustSpec()
	day := func(s string) int64 { tm, _ := time.Parse(time.DateOnly, s); return spec.Index(tm) }
	cases := []struct {
		name, key, value string
		want             []int64 // nil: rejected
		reason           Reason
	}{
		{"dates", "S/K", `{"promo":["2024-05-03","2024-05-01"]}`, []int64{day("2024-05-01"), day("2024-05-03")}, ""},
		{"times and repeats", "S/K", `{"promo":["2024-05-01T18:00:00+02:00","2024-05-01"]}`, []int64{day("2024-05-01")}, ""},
		{"no promotions", "S/K", `{"promo":[]}`, []int64{}, ""},
		{"missing promo", "S/K", `{}`, nil, ReasonMissingField},
		{"bad date", "S/K", `{"promo":["2024-13-01"]}`, nil, ReasonInvalidField},
		{"not a string", "S/K", `{"promo":[20240501]}`, nil, ReasonInvalidJSON},
		{"unknown field", "S/K", `{"promo":[],"price":[1]}`, nil, ReasonInvalidJSON},
		{"bad key", "SK", `{"promo":[]}`, nil, ReasonKeyMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewPlanTable(spec)
			err := tab.Apply([]byte(tc.key), []byte(tc.value))
			var inv *InvalidError
			switch {
			case tc.want == nil && (!errors.As(err, &inv) || inv.Reason != tc.reason):
				t.Fatalf("err %v, want reason %s", err, tc.reason)
			case tc.want == nil:
				if tab.Len() != 0 {
					t.Errorf("a rejected record made a plan")
				}
			case err != nil:
				t.Fatal(err)
			}
			if tc.key == "S/K" {
				if schemaErr := schematest.Validate(t, "plans", []byte(tc.value)); (schemaErr == nil) != (tc.want != nil) {
					t.Errorf("schema: %v, decoder accepts %v", schemaErr, tc.want != nil)
				}
			}
			if tc.want == nil {
				return
			}
			origin := day("2024-04-30")
			promo := make([]bool, 5)
			if !tab.Plan("S/K", origin, promo) || tab.Plan("S/other", origin, promo) {
				t.Fatal("plan known for the wrong series")
			}
			for h, p := range promo {
				if want := slices.Contains(tc.want, origin+1+int64(h)); p != want {
					t.Errorf("step %d: promo %v, want %v", h, p, want)
				}
			}
			if err := tab.Apply([]byte(tc.key), nil); err != nil || tab.Plan("S/K", origin, promo) {
				t.Errorf("tombstone: %v, plan still known", err)
			}
		})
	}
}

// FuzzDecodePlan checks that any plans record either decodes into sorted,
// distinct bucket indices or is rejected with an *InvalidError.
// TestDecodePlanLimits holds the plans record's documented limits: 1,000
// entries as RFC 3339 times fit, one more entry or more bytes than
// maxPlanBytes do not.
func TestDecodePlanLimits(t *testing.T) {
	spec := mustSpec()
	plan := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"promo":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q", start2024.AddDate(0, 0, i).Add(10*time.Hour).Format(time.RFC3339))
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	tests := []struct {
		name   string
		value  []byte
		reason Reason // "" when the record is good
	}{
		{"1,000 times", plan(1000), ""},
		{"1,001 times", plan(1001), ReasonInvalidField},
		{"too many bytes", append(plan(10)[:len(plan(10))-1], append(bytes.Repeat([]byte(" "), maxPlanBytes), '}')...), ReasonOversized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := DecodePlan([]byte("S/K"), tc.value, spec)
			var inv *InvalidError
			switch {
			case tc.reason == "" && (err != nil || len(idx) != 1000):
				t.Errorf("%d bytes: %d buckets, %v", len(tc.value), len(idx), err)
			case tc.reason != "" && (!errors.As(err, &inv) || inv.Reason != tc.reason):
				t.Errorf("%d bytes: %v, want reason %v", len(tc.value), err, tc.reason)
			}
		})
	}
}

func FuzzDecodePlan(f *testing.F) {
	for _, v := range []string{
		`{"promo":["2024-05-01","2024-05-03T12:00:00+02:00","2024-05-01"]}`,
		`{"promo":[]}`, `{"promo":null}`, `{"promo":["0000-01-01","9999-12-31T23:59:59Z"]}`,
		`{"promo":["2024-02-30"]}`, `{"promo":[1]}`, `{}`, `[]`, `null`, "",
	} {
		f.Add([]byte("s/k"), []byte(v))
	}
	spec := mustSpec()
	f.Fuzz(func(t *testing.T, key, value []byte) {
		idx, err := DecodePlan(key, value, spec)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an *InvalidError", err)
			}
			return
		}
		for i := 1; i < len(idx); i++ {
			if idx[i] <= idx[i-1] {
				t.Fatalf("indices %v not sorted and distinct", idx)
			}
		}
	})
}

// TestPromoLiftSlots checks the estimator's slots by bucket width: a day's
// hours, a week's days, and one slot for weekly buckets, whose lift a
// regular schedule (every fourth week a promotion that doubles sales)
// must teach it, as 52 slots, one per week of the year, never would.
func TestPromoLiftSlots(t *testing.T) {
	tests := []struct {
		width window.Width
		slots int
	}{
		{window.Hour, 24},
		{window.Day, 7},
		{window.Week, 1},
	}
	for _, tc := range tests {
		spec, err := window.NewSpec(tc.width, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		lift, err := newPromoLift(&Promotions{On: true}, spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := lift.Config().Period; got != tc.slots {
			t.Errorf("%v buckets: %d slots, want %d", tc.width, got, tc.slots)
		}
		if tc.width != window.Week {
			continue
		}
		var st model.PromoState
		var pool model.PromoPool
		for w := range int64(3 * 52) {
			qty, promo := 10.0, 0.0
			if w%4 == 0 {
				qty, promo = 20, 1
			}
			lift.Observe(&st, &pool, w, qty, promo)
		}
		if l, _ := lift.Lift(&st, &pool); math.Abs(l-2) > 0.05 {
			t.Errorf("weekly buckets, a promotion every fourth week: lift %v, want 2", l)
		}
	}
}
