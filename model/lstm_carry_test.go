package model

import (
	"math"
	"testing"
)

// lstmSlide returns the windows of the series in long that end at bucket
// index end (exclusive), at most n buckets each, keyed 1, 2, ….
func lstmSlide(long []Input, end, n int) []Input {
	in := make([]Input, len(long))
	for i, s := range long {
		lo := max(end-n, 0)
		in[i] = Input{Y: s.Y[lo:end], Price: s.Price[lo:end], Promo: s.Promo[lo:end], Start: s.Start + int64(lo), Period: s.Period, Key: uint64(i + 1)}
	}
	return in
}

// lstmTwins returns a model of the recurrent learner name with carried
// states and one running every window in full, with the same weights.
func lstmTwins(t *testing.T, name string, refresh int) (carried, full Learner) {
	t.Helper()
	cfg := lstmSmall
	cfg.Refresh = refresh
	carried = newLearner(t, name, cfg, lstmSmallCfg)
	cfg.Refresh = 1
	full = newLearner(t, name, cfg, lstmSmallCfg)
	return carried, full
}

// recurrentLearners are the learners with carried states.
var recurrentLearners = []string{NameLSTM, NameGRU}

// lstmRelDiff returns the largest difference between the means and
// quantiles of a and b relative to the largest value of b.
func lstmRelDiff(a, b []*Forecast) float64 {
	var diff, mag float64
	for i := range a {
		for j := range a[i].Mean {
			diff = max(diff, math.Abs(a[i].Mean[j]-b[i].Mean[j]))
			mag = max(mag, math.Abs(b[i].Mean[j]))
		}
		for j := range a[i].Q {
			diff = max(diff, math.Abs(a[i].Q[j]-b[i].Q[j]))
			mag = max(mag, math.Abs(b[i].Q[j]))
		}
	}
	return diff / max(mag, 1e-12)
}

// TestCarryExact checks the carried state against full runs where
// they must agree: series younger than the window (so a full run starts
// from the zero state at the same first bucket) with no sales (so the
// scale stays 1) and no prices (whose feature is relative to the window's
// mean), forecast bucket after bucket without a refresh.
func TestCarryExact(t *testing.T) {
	for _, name := range recurrentLearners {
		t.Run(name, func(t *testing.T) { testCarryExact(t, name) })
	}
}

func testCarryExact(t *testing.T, name string) {
	carried, full := lstmTwins(t, name, 1000)
	long := lstmTestSeries(6, 10, 5)
	for i := range long {
		clear(long[i].Y)
		long[i].Price = make([]float32, len(long[i].Y))
	}
	a, b := lstmForecasts(lstmSmallCfg, len(long)), lstmForecasts(lstmSmallCfg, len(long))
	for end := 1; end <= lstmSmall.Window; end++ {
		in := lstmSlide(long, end, lstmSmall.Window)
		carried.ForecastBatch(a, in)
		full.ForecastBatch(b, in)
		if d := lstmRelDiff(a, b); d > 1e-5 {
			t.Fatalf("window ending at %d: carried forecasts differ from full runs by %.3g", end, d)
		}
	}
	if !learnerInternals(carried).stepped {
		t.Fatal("no forecast stepped a carried state")
	}
	if f := learnerInternals(full); f.carries || f.stepped {
		t.Fatal("Refresh 1 carried state")
	}
}

// TestCarrySchedule runs forecasts over consecutive buckets and checks
// which of them run the window in full (bit-identical to the twin that
// always does) and which step the carried state (not identical): a series
// runs in full first, then after refresh-1-(key mod refresh) steps, then
// every refresh buckets, and after a skipped or repeated bucket.
func TestCarrySchedule(t *testing.T) {
	for _, name := range recurrentLearners {
		t.Run(name, func(t *testing.T) { testCarrySchedule(t, name) })
	}
}

func testCarrySchedule(t *testing.T, name string) {
	const refresh, days = 4, 14
	carried, full := lstmTwins(t, name, refresh)
	long := lstmTestSeries(5, 40+days, 6)
	a, b := lstmForecasts(lstmSmallCfg, len(long)), lstmForecasts(lstmSmallCfg, len(long))
	ends := make([]int, 0, days)
	for d := range days {
		ends = append(ends, 40+d)
	}
	// Day 9 repeats day 8's bucket and day 12 skips one.
	ends[9], ends[12], ends[13] = ends[8], ends[12]+1, ends[13]+1
	age := make([]int, len(long))
	for d, end := range ends {
		in := lstmSlide(long, end, 20)
		carried.ForecastBatch(a, in)
		full.ForecastBatch(b, in)
		for i := range in {
			key := int(in[i].Key)
			var wantFull bool
			switch {
			case d == 0:
				wantFull, age[i] = true, key%refresh
			case ends[d] != ends[d-1]+1 || age[i]+1 >= refresh:
				wantFull, age[i] = true, 0
			default:
				age[i]++
			}
			same := lstmSameForecasts(a[i:i+1], b[i:i+1])
			if wantFull != same {
				t.Errorf("day %d, series %d: full run %v, forecasts identical to the full twin's %v", d, i, wantFull, same)
			}
		}
	}
}

// TestLSTMCarryStates checks the bookkeeping of carried states: series
// without a Key keep none, a state whose series stopped advancing is
// dropped when room is needed, and the step path allocates nothing once
// the states exist.
func TestLSTMCarryStates(t *testing.T) {
	m := lstmNew(t, LearnerConfig{Layers: 2, Hidden: 8, Window: 12, Refresh: 3, Calendar: lstmCalendar{width: 3}}, lstmSmallCfg)
	long := lstmTestSeries(40, 60, 7)
	for i := range long {
		long[i].Start = 1000 // one partition closes the same bucket for all
	}
	dst := lstmForecasts(lstmSmallCfg, len(long))
	in := lstmSlide(long, 30, 30)
	for i := range in[:10] {
		in[i].Key = 0
	}
	m.ForecastBatch(dst, in)
	if got := m.carry.len(); got != 30 {
		t.Fatalf("%d carried states after forecasting 30 keyed series, want 30", got)
	}
	// Only the last 10 series advance; the others' states go stale and
	// make room for new keys instead of growing the slab.
	for end := 31; end < 40; end++ {
		in := lstmSlide(long, end, 30)[30:]
		for i := range in {
			in[i].Key += uint64(100 * (end - 30))
		}
		m.ForecastBatch(dst[:len(in)], in)
	}
	// 120 keys had states; those more than 3 buckets behind were dropped.
	if got, slab := m.carry.len(), len(m.carry.slots); got > slab || slab >= 120 {
		t.Errorf("%d states in %d slots after 9 buckets of 10 new series each: stale states were not reused", got, slab)
	}
	m.Forget(in[29].Key)
	m.Forget(12345) // no state: nothing happens
	if _, ok := m.carry.index[in[29].Key]; ok {
		t.Error("Forget kept the state")
	}
	cp, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UnmarshalBinary(cp); err != nil || m.carry.len() != 0 {
		t.Errorf("UnmarshalBinary: %v, %d carried states of the old weights kept", err, m.carry.len())
	}
	steady := lstmSlide(long, 40, 30)
	m.ForecastBatch(dst, steady)
	end := 41
	if a := testing.AllocsPerRun(5, func() {
		m.ForecastBatch(dst, lstmSlideInto(steady, long, end, 30))
		end++
	}); a != 0 {
		t.Errorf("ForecastBatch with carried states: %v allocations", a)
	}
}

// lstmSlideInto moves the windows in to end at bucket end, as lstmSlide
// would cut them, without allocating.
func lstmSlideInto(in, long []Input, end, n int) []Input {
	for i, s := range long {
		lo := max(end-n, 0)
		in[i].Y, in[i].Price, in[i].Promo, in[i].Start = s.Y[lo:end], s.Price[lo:end], s.Promo[lo:end], s.Start+int64(lo)
	}
	return in
}

func TestLSTMCarryConfig(t *testing.T) {
	for _, refresh := range []int{-1, 1001} {
		if _, err := NewLSTM(LearnerConfig{Refresh: refresh}, Config{}); err == nil {
			t.Errorf("Refresh %d accepted", refresh)
		}
	}
	m := lstmNew(t, LearnerConfig{}, Config{})
	if m.cfg.Refresh != 7 || m.carry == nil {
		t.Errorf("default Refresh %d", m.cfg.Refresh)
	}
}

// TestLSTMCarryStep checks one carried step against a float64 reference
// computed here from the state the previous forecast left: the gates of
// every layer on [x | h | 1], the cell, the head, and the last full run's
// scale for both the new quantity and the outputs.
func TestLSTMCarryStep(t *testing.T) {
	m := lstmNew(t, LearnerConfig{Layers: 2, Hidden: 8, Window: 10, Refresh: 1000}, lstmSmallCfg)
	long := lstmTestSeries(4, 30, 8)
	for i := range long {
		long[i].Start = 1000
	}
	dst := lstmForecasts(lstmSmallCfg, len(long))
	m.ForecastBatch(dst, lstmSlide(long, 20, 20))
	type saved struct {
		state []float32
		norm  featNorm
	}
	before := make([]saved, len(long))
	for i := range long {
		slot := m.carry.index[uint64(i+1)]
		before[i] = saved{append([]float32(nil), m.carry.state(slot)...), m.carry.slots[slot].norm}
	}
	in := lstmSlide(long, 21, 20)
	m.ForecastBatch(dst, in)

	sh, hid, g := m.sh, m.sh.hidden, 4*m.sh.hidden
	x := make([]float32, sh.features)
	out := make([]float32, sh.outputs())
	want := lstmForecasts(lstmSmallCfg, 1)
	var rescaled bool
	for i := range in {
		s0, p0 := before[i].norm.scale, before[i].norm.pmean
		norm, _ := buildFeatures(&m.feat, &in[i], len(in[i].Y), x, sh.features, 0, 1, sh.window-1, nil, true)
		rescaled = rescaled || (norm.scale != s0 && norm.pmean != p0)
		// The step's features are relative to the last full run's norm.
		last := len(in[i].Y) - 1
		x[0] = float32(in[i].Y[last] / s0)
		x[2] = float32(min(float64(in[i].Price[last])/p0, priceCap))
		input := make([]float64, 0, sh.features)
		for _, v := range x {
			input = append(input, float64(v))
		}
		for l := range sh.layers {
			st := before[i].state[2*l*hid : 2*(l+1)*hid]
			stacked := append([]float64(nil), input...)
			for _, v := range st[:hid] {
				stacked = append(stacked, float64(v))
			}
			stacked = append(stacked, 1)
			w := m.net.w[l]
			h := make([]float64, hid)
			for j := range hid {
				var z [4]float64
				for k := range z {
					for r, v := range stacked {
						z[k] += v * float64(w[r*g+k*hid+j])
					}
				}
				sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
				c := sig(z[1])*float64(st[hid+j]) + sig(z[0])*math.Tanh(z[2])
				h[j] = sig(z[3]) * math.Tanh(c)
			}
			input = h
		}
		o := sh.outputs()
		for j := range o {
			v := float64(m.net.wo[hid*o+j])
			for r, hv := range input {
				v += hv * float64(m.net.wo[r*o+j])
			}
			out[j] = float32(v)
		}
		writeForecast(want[0], out, s0, m.levels)
		if d := lstmRelDiff(dst[i:i+1], want); d > 1e-4 {
			t.Errorf("series %d: carried step differs from the reference by %.3g", i, d)
		}
	}
	if !rescaled {
		t.Fatal("no window changed its scale and mean price: the test cannot tell the norms apart")
	}
}

// TestLSTMCarryPruneWhileStepping makes the slot a series is about to
// step look stale (another series is far ahead) while a new series needs
// a slot in a full slab: the step must still use its own state.
func TestLSTMCarryPruneWhileStepping(t *testing.T) {
	cfg := LearnerConfig{Layers: 2, Hidden: 8, Window: 10, Refresh: 3}
	m, alone := lstmNew(t, cfg, lstmSmallCfg), lstmNew(t, cfg, lstmSmallCfg)
	long := lstmTestSeries(3, 40, 9)
	for i := range long {
		long[i].Start = 0
	}
	win := func(i, end int) Input {
		in := lstmSlide(long[i:i+1], end, 10)[0]
		in.Key = uint64(i + 1) // key 1 starts at age 1: its next forecast steps
		return in
	}
	one := lstmForecasts(lstmSmallCfg, 1)
	two := lstmForecasts(lstmSmallCfg, 2)
	m.ForecastBatch(one, []Input{win(0, 10)})
	alone.ForecastBatch(one, []Input{win(0, 10)})
	m.ForecastBatch(one, []Input{win(1, 30)}) // newest bucket 29: key 1 looks stale
	n := len(m.carry.slots)
	m.carry.slots = m.carry.slots[:n:n] // full: the next new key prunes
	m.ForecastBatch(two, []Input{win(0, 11), win(2, 30)})
	alone.ForecastBatch(one, []Input{win(0, 11)})
	if alone.fs == nil || !lstmSameForecasts(two[:1], one) {
		t.Error("a series stepped another series' state after its slot was pruned and reused")
	}
}

// TestLSTMCarryNegativeBuckets forecasts series with negative bucket
// indices while new series keep taking slots: the live states must keep
// stepping (none is dropped as stale).
func TestLSTMCarryNegativeBuckets(t *testing.T) {
	carried, full := lstmTwins(t, NameLSTM, 1000)
	long := lstmTestSeries(60, 40, 10)
	for i := range long {
		long[i].Start = -20000
	}
	a, b := lstmForecasts(lstmSmallCfg, len(long)), lstmForecasts(lstmSmallCfg, len(long))
	for d := range 20 {
		n := 40 + d // one new series a bucket
		in := lstmSlide(long[:n], 20+d, 20)
		carried.ForecastBatch(a[:n], in)
		full.ForecastBatch(b[:n], in)
		for i := range 40 {
			if d > 0 && lstmSameForecasts(a[i:i+1], b[i:i+1]) {
				t.Fatalf("bucket %d: series %d ran its window in full: its state was dropped", d, i)
			}
		}
	}
}
