package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// promoSeries simulates days of a series with a weekday pattern whose
// promotions, drawn with probability share on the days promoDays allows,
// multiply demand by lift, feeding each day to the estimator.
func promoSeries(p *PromoLift, st *PromoState, pool *PromoPool, r *rand.Rand, days int, level, lift, share float64, weekly [7]float64, promoDays func(int) bool) {
	for d := range days {
		promo := promoDays(d) && r.Float64() < share
		mean := level * weekly[d%7]
		if promo {
			mean *= lift
		}
		qty := math.Max(0, math.Round(mean+math.Sqrt(mean)*r.NormFloat64()))
		share := 0.0
		if promo {
			share = 1
		}
		p.Observe(st, pool, int64(d), qty, share)
	}
}

func TestPromoLiftRecoversKnownLift(t *testing.T) {
	flat := [7]float64{1, 1, 1, 1, 1, 1, 1}
	// Weekends sell twice as much and are never on promotion: a
	// per-series ratio that ignored the weekday would see the weekday
	// promotions as much smaller than they are.
	weekend := [7]float64{1, 1, 1, 1, 1, 2, 2}
	anyDay := func(int) bool { return true }
	weekdays := func(d int) bool { return d%7 < 5 }
	cases := []struct {
		name                string
		lift, level, share  float64
		weekly              [7]float64
		promoDays           func(int) bool
		days                int
		tol                 float64 // relative
		pooledTol, freqWant float64
	}{
		{"flat lift 2", 2, 40, 0.2, flat, anyDay, 730, 0.06, 0.15, 0.2},
		{"weekday promotions lift 1.8", 1.8, 60, 0.5, weekend, weekdays, 730, 0.06, 0.15, 0.5},
		{"small series lift 2.5", 2.5, 5, 0.15, flat, anyDay, 730, 0.12, 0.2, 0.15},
		{"no lift", 1, 30, 0.3, weekend, anyDay, 730, 0.06, 0.15, 0.3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPromoLift(PromoConfig{})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			var pool PromoPool
			var sts [20]PromoState
			for i := range sts {
				promoSeries(p, &sts[i], &pool, r, tc.days, tc.level, tc.lift, tc.share, tc.weekly, tc.promoDays)
			}
			var sumLog float64
			for i := range sts {
				l, n := p.Lift(&sts[i], &pool)
				if n == 0 {
					t.Fatalf("series %d: no promotion seen", i)
				}
				if math.Abs(l/tc.lift-1) > 2*tc.tol {
					t.Errorf("series %d: lift %.3f, want %.3f within %.0f%%", i, l, tc.lift, 200*tc.tol)
				}
				sumLog += math.Log(l)
			}
			if mean := math.Exp(sumLog / float64(len(sts))); math.Abs(mean/tc.lift-1) > tc.tol {
				t.Errorf("mean lift %.3f, want %.3f within %.0f%%", mean, tc.lift, 100*tc.tol)
			}
			if pooled := p.Pooled(&pool); math.Abs(pooled/tc.lift-1) > tc.pooledTol {
				t.Errorf("pooled lift %.3f, want %.3f within %.0f%%", pooled, tc.lift, 100*tc.pooledTol)
			}
			// Monday (day 0's slot) carries the drawn promotion share.
			if pi := p.Frequency(&sts[0], 0); math.Abs(pi-tc.freqWant) > 0.15 {
				t.Errorf("Monday's promotion frequency %.3f, want about %.2f", pi, tc.freqWant)
			}
		})
	}
}

func TestPromoLiftShrinksToPool(t *testing.T) {
	p, _ := NewPromoLift(PromoConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	flat := [7]float64{1, 1, 1, 1, 1, 1, 1}
	var pool PromoPool
	var sts [10]PromoState
	for i := range sts {
		promoSeries(p, &sts[i], &pool, r, 400, 30, 2, 0.2, flat, func(int) bool { return true })
	}
	// A series never on promotion gets the pool's lift.
	var never PromoState
	promoSeries(p, &never, &pool, r, 400, 30, 2, 0.2, flat, func(int) bool { return false })
	l, n := p.Lift(&never, &pool)
	if n != 0 || math.Abs(l-p.Pooled(&pool)) > 1e-12 {
		t.Errorf("series without promotions: lift %v on %v promotions, want the pooled %v on 0", l, n, p.Pooled(&pool))
	}
	// A series with a single promotion that did nothing stays near the
	// pool rather than at 1.
	var once PromoState
	for d := range 200 {
		share := 0.0
		if d == 100 {
			share = 1
		}
		p.Observe(&once, &pool, int64(d), 30, share)
	}
	if l, _ := p.Lift(&once, &pool); l < 1.6 {
		t.Errorf("one promotion without effect: lift %.3f, want it shrunk to the pool near 2", l)
	}
	var empty PromoPool
	if l, _ := p.Lift(&never, &empty); l != 1 {
		t.Errorf("empty pool: lift %v, want 1", l)
	}
}

func TestPromoFactorsDemixAndRemix(t *testing.T) {
	p, _ := NewPromoLift(PromoConfig{})
	var st PromoState
	var pool PromoPool
	// Slot 0 (Monday) promoted every other week at lift 2, the rest never:
	// no noise, so the lift is exact.
	for d := range 700 {
		qty, share := 10.0, 0.0
		if d%7 == 0 && (d/7)%2 == 0 {
			qty, share = 20, 1
		}
		p.Observe(&st, &pool, int64(d), qty, share)
	}
	lift, _ := p.Lift(&st, &pool)
	if math.Abs(lift-2) > 1e-9 {
		t.Fatalf("lift %v, want 2", lift)
	}
	pi := p.Frequency(&st, 0)
	if math.Abs(pi-0.5) > 0.02 {
		t.Fatalf("Monday's frequency %v, want about 0.5", pi)
	}
	// A forecaster averaging Mondays forecasts 15: the baseline is 10,
	// under promotion 20. Other days stay 10 either way.
	origin := int64(699) // step 0 is bucket 700, a Monday
	mixed := 10 * (1 - pi + pi*lift)
	cases := []struct {
		name string
		plan []bool
		want []float64 // per step, of a forecast of mixed on Mondays and 10 elsewhere
	}{
		{"no plan", nil, []float64{10, 10, 10, 10, 10, 10, 10, 10}},
		{"Monday promoted", []bool{true}, []float64{20, 10, 10, 10, 10, 10, 10, 10}},
		{"Tuesday promoted", []bool{false, true}, []float64{10, 20, 10, 10, 10, 10, 10, 10}},
		{"both Mondays", []bool{true, false, false, false, false, false, false, true}, []float64{20, 10, 10, 10, 10, 10, 10, 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := NewForecast(Config{Horizon: 8, Levels: DefaultLevels})
			for h := range 8 {
				v := 10.0
				if h%7 == 0 {
					v = mixed
				}
				f.Mean[h] = v
				f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = 0.5*v, v, 1.5*v
			}
			g := p.Factors(make([]float64, 8), &st, &pool, origin, tc.plan)
			out := Scale(&Forecast{}, f, g)
			for h, w := range tc.want {
				if math.Abs(out.Mean[h]-w) > 1e-9 {
					t.Errorf("step %d: mean %v, want %v", h, out.Mean[h], w)
				}
				if q := out.Q[3*h : 3*h+3]; math.Abs(q[0]-0.5*w) > 1e-9 || math.Abs(q[1]-w) > 1e-9 || math.Abs(q[2]-1.5*w) > 1e-9 {
					t.Errorf("step %d: quantiles %v, want scaled by the mean's factor to %v", h, q, w)
				}
			}
			if f.Mean[0] != mixed {
				t.Errorf("Scale changed its input: %v", f.Mean[0])
			}
		})
	}
}

func TestPromoStateEncoding(t *testing.T) {
	p, _ := NewPromoLift(PromoConfig{})
	r := rand.New(rand.NewPCG(5, 6))
	var st PromoState
	var pool PromoPool
	promoSeries(p, &st, &pool, r, 100, 10, 2, 0.3, [7]float64{1, 1, 1, 1, 1, 1, 1}, func(int) bool { return true })
	st.Applied = []float32{1, 0.8, 1.6}
	b, _ := st.AppendBinary(nil)
	var got PromoState
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.last != st.last || got.seen != st.seen || got.shares != st.shares || got.next != st.next || !got.seen {
		t.Errorf("round trip: last %d %v, ring %v at %d; want %d %v, %v at %d", got.last, got.seen, got.shares, got.next,
			st.last, st.seen, st.shares, st.next)
	}
	l1, n1 := p.Lift(&st, &pool)
	l2, n2 := p.Lift(&got, &pool)
	if l1 != l2 || n1 != n2 || len(got.Applied) != 3 || got.Applied[2] != 1.6 || p.Frequency(&got, 3) != p.Frequency(&st, 3) {
		t.Errorf("round trip: lift %v/%v on %v/%v, applied %v", l1, l2, n1, n2, got.Applied)
	}
	pb, _ := pool.AppendBinary(nil)
	var gotPool PromoPool
	if err := gotPool.UnmarshalBinary(pb); err != nil || gotPool != pool {
		t.Errorf("pool round trip: %v %v, want %v", gotPool, err, pool)
	}
	bad := map[string][]byte{
		"empty":      nil,
		"version":    append([]byte{9}, b[1:]...),
		"truncated":  b[:len(b)-3],
		"trailing":   append(append([]byte(nil), b...), 0),
		"slot count": {promoVersion, 200},
		"negative": func() []byte {
			c := append([]byte(nil), b...)
			c[len(c)-1-4*len(st.Applied)-32*len(st.slots)+7] = 0xff // the first slot's first value's sign
			return c
		}(),
		"ring slot": func() []byte { c := append([]byte(nil), b...); c[3] = promoShares; return c }(),
	}
	for name, v := range bad {
		if err := new(PromoState).UnmarshalBinary(v); !errors.Is(err, ErrPromoState) {
			t.Errorf("%s: err %v, want ErrPromoState", name, err)
		}
	}
	if err := new(PromoPool).UnmarshalBinary(pb[:9]); !errors.Is(err, ErrPromoState) {
		t.Errorf("short pool: err %v", err)
	}
}

func TestPromoConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  PromoConfig
		ok   bool
	}{
		{"defaults", PromoConfig{}, true},
		{"negative period", PromoConfig{Period: -1}, false},
		{"lift bound 1", PromoConfig{MaxLift: 1}, false},
		{"threshold above 1", PromoConfig{Threshold: 1.5}, false},
		{"half-life below 1", PromoConfig{HalfLife: 0.5}, false},
	}
	for _, tc := range cases {
		if _, err := NewPromoLift(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// BenchmarkPromoClose measures what a close costs a series with
// promotions on: observing the closed bucket, and the factors and scaling
// of a 28-step forecast under a plan.
func BenchmarkPromoClose(b *testing.B) {
	p, _ := NewPromoLift(PromoConfig{})
	r := rand.New(rand.NewPCG(7, 8))
	var st PromoState
	var pool PromoPool
	promoSeries(p, &st, &pool, r, 365, 20, 2, 0.2, [7]float64{1, 1, 1, 1, 1, 1, 1}, func(int) bool { return true })
	f := NewForecast(Config{Horizon: 28, Levels: DefaultLevels})
	for h := range f.Mean {
		f.Mean[h], f.Q[3*h], f.Q[3*h+1], f.Q[3*h+2] = 20, 10, 20, 30
	}
	plan := make([]bool, 28)
	plan[3], plan[4] = true, true
	g := make([]float64, 28)
	var out Forecast
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		idx := int64(365 + i)
		p.Observe(&st, &pool, idx, 20, 0)
		Scale(&out, f, p.Factors(g, &st, &pool, idx, plan))
	}
}

// FuzzPromoState checks that decoding any bytes either fails with
// ErrPromoState or gives a state whose encoding decodes to the same
// state, with a finite positive lift.
func FuzzPromoState(f *testing.F) {
	p, _ := NewPromoLift(PromoConfig{})
	var st PromoState
	var pool PromoPool
	promoSeries(p, &st, &pool, rand.New(rand.NewPCG(9, 10)), 60, 10, 2, 0.3, [7]float64{1, 1, 1, 1, 1, 1, 1}, func(int) bool { return true })
	b, _ := st.AppendBinary(nil)
	f.Add(b)
	st.Applied = []float32{1.5, 0.75}
	b, _ = st.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{promoVersion, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var got PromoState
		if err := got.UnmarshalBinary(v); err != nil {
			if !errors.Is(err, ErrPromoState) {
				t.Fatalf("error %v does not wrap ErrPromoState", err)
			}
			return
		}
		again, _ := got.AppendBinary(nil)
		var back PromoState
		if err := back.UnmarshalBinary(again); err != nil {
			t.Fatalf("%x decoded, its encoding %x does not: %v", v, again, err)
		}
		if third, _ := back.AppendBinary(nil); !bytes.Equal(third, again) {
			t.Fatalf("%x re-encodes as %x, then %x", v, again, third)
		}
		l, _ := p.Lift(&got, &pool)
		if !(l > 0) || math.IsInf(l, 0) {
			t.Fatalf("lift %v of a decoded state", l)
		}
	})
}

// TestPromoReplay replays closes as the engine does after a crash inside
// a split commit: the series' states of the commit were written, the
// pool (written with the commit point) was not. The replayed buckets must
// leave the series' state as it was and give the pool exactly what the
// first pass gave it, for up to promoShares promotion buckets of a series
// in one commit; a bucket the state was never given is counted as new.
func TestPromoReplay(t *testing.T) {
	p, _ := NewPromoLift(PromoConfig{})
	type obs struct {
		qty, promo float64
	}
	cases := []struct {
		name   string
		commit []obs // the buckets of the crashed commit, after 60 days of history
	}{
		{"one promotion bucket", []obs{{30, 1}}},
		{"one plain bucket", []obs{{10, 0}}},
		{"promotions and plain days", []obs{{28, 1}, {11, 0}, {31, 1}, {9, 0}}},
		{"as many promotions as the ring", []obs{{28, 1}, {29, 1}, {30, 1}, {31, 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st PromoState
			var pool PromoPool
			r := rand.New(rand.NewPCG(9, 10))
			promoSeries(p, &st, &pool, r, 60, 10, 3, 0.3, [7]float64{1, 1, 1, 1, 1, 1, 1}, func(int) bool { return true })
			committed := pool
			for i, o := range tc.commit {
				p.Observe(&st, &pool, int64(60+i), o.qty, o.promo)
			}
			want := pool
			written, _ := st.AppendBinary(nil)

			var again PromoState
			if err := again.UnmarshalBinary(written); err != nil {
				t.Fatal(err)
			}
			replayed := committed
			for i, o := range tc.commit {
				p.Observe(&again, &replayed, int64(60+i), o.qty, o.promo)
			}
			if replayed != want {
				t.Errorf("pool after the replay %+v, after the first pass %+v", replayed, want)
			}
			if b, _ := again.AppendBinary(nil); string(b) != string(written) {
				t.Error("the replay changed the series' state")
			}
			p.Observe(&again, &replayed, int64(60+len(tc.commit)), 12, 1)
			if last, ok := again.Last(); !ok || last != int64(60+len(tc.commit)) {
				t.Errorf("the next bucket was not observed: last %d %v", last, ok)
			}
		})
	}
}
