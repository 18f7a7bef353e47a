package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// trainedLearner returns a learner of name trained on series of seed, so
// that learners of different seeds hold different weights.
func trainedLearner(t testing.TB, name string, cfg LearnerConfig, seed uint64) Learner {
	t.Helper()
	m := newLearner(t, name, cfg, Config{Horizon: 7})
	in := lstmTestSeries(6, 40, seed)
	for end := 20; end <= 40; end += 4 {
		cut := make([]Input, len(in))
		for i, s := range in {
			cut[i] = s
			cut[i].Y, cut[i].Price, cut[i].Promo = s.Y[:end], s.Price[:end], s.Promo[:end]
		}
		m.Learn(cut)
	}
	return m
}

func snapshotOf(m Learner, part int32) *Snapshot {
	s := &Snapshot{}
	m.(Mixable).Snapshot(s)
	s.Partition = part
	return s
}

// TestMix checks that Mix moves the weights and the forecasting weights
// to the average of the learner's and its peers', weighted by examples
// seen, that gain acts on the step from the previous Mix's result, and
// that the optimizer state stays local.
func TestMix(t *testing.T) {
	for _, name := range Learners {
		for _, avg := range []float64{0, 0.9} {
			t.Run(fmt.Sprintf("%s/average=%v", name, avg), func(t *testing.T) {
				cfg := learnerSmall
				cfg.Average = avg
				own := trainedLearner(t, name, cfg, 1)
				peers := []*Snapshot{snapshotOf(trainedLearner(t, name, cfg, 2), 1), snapshotOf(trainedLearner(t, name, cfg, 3), 2)}
				peers[1].Examples *= 3 // a peer that saw more counts for more
				before := snapshotOf(own, 0)
				in := learnerInternals(own)
				m, v := slices.Clone(globalOptim(own).m), slices.Clone(globalOptim(own).v)
				if err := own.(Mixable).Mix(peers, 1); err != nil {
					t.Fatal(err)
				}
				total := float64(before.Examples + peers[0].Examples + peers[1].Examples)
				want := func(i int, get func(*Snapshot) []float32) float64 {
					w := float64(get(before)[i]) * float64(before.Examples) / total
					for _, p := range peers {
						w += float64(get(p)[i]) * float64(p.Examples) / total
					}
					return w
				}
				sets := []struct {
					name string
					got  []float32
					get  func(*Snapshot) []float32
				}{{"weight", in.params, func(s *Snapshot) []float32 { return s.Weights }}}
				if avg > 0 {
					sets = append(sets, struct {
						name string
						got  []float32
						get  func(*Snapshot) []float32
					}{"averaged weight", in.avg, func(s *Snapshot) []float32 { return s.Average }})
				} else if in.avg != nil || before.Average != nil {
					t.Fatal("averaging off, but an average is kept")
				}
				for _, set := range sets {
					for i, g := range set.got {
						if w := want(i, set.get); math.Abs(float64(g)-w) > 1e-6*(1+math.Abs(w)) {
							t.Fatalf("%s %d = %v, want %v", set.name, i, g, w)
						}
					}
				}
				if !slices.Equal(m, globalOptim(own).m) || !slices.Equal(v, globalOptim(own).v) {
					t.Error("Mix changed the Adam moments")
				}
				// The forecasts run on the mixed weights: equal to those of a
				// learner loaded with them.
				var base Snapshot
				if !own.(Mixable).MixBase(&base) || !slices.Equal(base.Weights, in.params) {
					t.Error("MixBase does not hold the mixed weights")
				}
			})
		}
	}
}

// globalOptim returns the optimizer of a learner's trained network.
func globalOptim(m Learner) *optim[float32] {
	switch m := m.(type) {
	case *LSTM:
		return m.net.opt()
	case *GRU:
		return m.net.opt()
	case *Transformer:
		return m.net.opt()
	}
	panic(fmt.Sprintf("no optimizer of %T", m))
}

// TestMixGain checks that after a first Mix a gain g moves the weights
// to base + g·(average − base), that gain 1 is plain averaging, that the
// base survives SetMixBase, and that invalid gains and peers are errors
// that leave the learner unchanged.
func TestMixGain(t *testing.T) {
	cfg := learnerSmall
	cfg.Average = 0.9
	for _, gain := range []float64{1, 2, 3} {
		t.Run(fmt.Sprint(gain), func(t *testing.T) {
			a := trainedLearner(t, NameLSTM, cfg, 1)
			peer := snapshotOf(trainedLearner(t, NameLSTM, cfg, 2), 1)
			first := snapshotOf(a, 0)
			if first.Examples != peer.Examples {
				t.Fatalf("examples %d and %d, want equal", first.Examples, peer.Examples)
			}
			if err := a.(Mixable).Mix([]*Snapshot{peer}, gain); err != nil {
				t.Fatal(err)
			}
			var base Snapshot
			a.(Mixable).MixBase(&base)
			// The first Mix has no base: plain averaging whatever the gain.
			for i, w := range base.Weights {
				if want := peer.Weights[i] + first.Weights[i]; math.Abs(float64(2*w-want)) > 1e-5 {
					t.Fatalf("first mix weight %d = %v, want the mean", i, w)
				}
			}
			// Train on, then mix again from a fresh copy restored with the base,
			// as a restarted partition would.
			in := lstmTestSeries(6, 44, 9)
			a.Learn(in)
			b := newLearner(t, NameLSTM, cfg, Config{Horizon: 7})
			if err := b.(Checkpointer).UnmarshalBinary(checkpoint(t, a)); err != nil {
				t.Fatal(err)
			}
			if err := b.(Mixable).SetMixBase(&base); err != nil {
				t.Fatal(err)
			}
			peer2 := snapshotOf(trainedLearner(t, NameLSTM, cfg, 3), 1)
			own := snapshotOf(b, 0)
			if err := b.(Mixable).Mix([]*Snapshot{peer2}, gain); err != nil {
				t.Fatal(err)
			}
			total := float64(own.Examples + peer2.Examples)
			got := snapshotOf(b, 0)
			for _, set := range []struct{ base, own, peer, got []float32 }{
				{base.Weights, own.Weights, peer2.Weights, got.Weights},
				{base.Average, own.Average, peer2.Average, got.Average},
			} {
				for i := range set.got {
					mean := (float64(set.own[i])*float64(own.Examples) + float64(set.peer[i])*float64(peer2.Examples)) / total
					want := float64(set.base[i]) + gain*(mean-float64(set.base[i]))
					if math.Abs(float64(set.got[i])-want) > 1e-5*(1+math.Abs(want)) {
						t.Fatalf("weight %d = %v, want %v", i, set.got[i], want)
					}
				}
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		a := trainedLearner(t, NameLSTM, cfg, 1)
		good := snapshotOf(trainedLearner(t, NameLSTM, cfg, 2), 1)
		other := cfg
		other.Hidden = 6
		noAvg := cfg
		noAvg.Average = 0
		before := checkpoint(t, a)
		for _, tc := range []struct {
			name string
			peer *Snapshot
			gain float64
			want error
		}{
			{"gru", snapshotOf(trainedLearner(t, NameGRU, cfg, 2), 1), 1, ErrSnapshotMismatch},
			{"hidden", snapshotOf(trainedLearner(t, NameLSTM, other, 2), 1), 1, ErrSnapshotMismatch},
			{"no average", snapshotOf(trainedLearner(t, NameLSTM, noAvg, 2), 1), 1, ErrSnapshotMismatch},
			{"zero gain", good, 0, nil},
			{"NaN gain", good, math.NaN(), nil},
		} {
			err := a.(Mixable).Mix([]*Snapshot{good, tc.peer}, tc.gain)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: Mix = %v, want %v", tc.name, err, tc.want)
			}
			if !slices.Equal(before, checkpoint(t, a)) {
				t.Fatalf("%s: a failed Mix changed the learner", tc.name)
			}
		}
	})
}

// TestSnapshotEncoding round-trips snapshots and checks that every
// truncation and every flipped bit is an ErrSnapshot that leaves the
// destination unchanged.
func TestSnapshotEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Snapshot
	}{
		{"averaged", Snapshot{Learner: NameLSTM, Fingerprint: 7, Version: 12, Examples: 340, Partition: 5, Round: 9,
			Weights: []float32{1, -2.5, 3e-7}, Average: []float32{0.5, 0, -1}}},
		{"latest only", Snapshot{Learner: NameGRU, Fingerprint: 1 << 60, Partition: 0, Round: -1, Weights: []float32{4}}},
		{"empty", Snapshot{Learner: NameTransformer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.s.EncodedLen() {
				t.Errorf("encoding of %d bytes, EncodedLen %d", len(b), tc.s.EncodedLen())
			}
			var got Snapshot
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.s) || (got.Average == nil) != (tc.s.Average == nil) {
				t.Fatalf("round trip = %+v, want %+v", got, tc.s)
			}
			keep := fmt.Sprint(got)
			for n := range len(b) {
				if err := got.UnmarshalBinary(b[:n]); !errors.Is(err, ErrSnapshot) {
					t.Fatalf("truncated to %d bytes: %v, want ErrSnapshot", n, err)
				}
			}
			bad := slices.Clone(b)
			for i := range bad {
				for bit := range 8 {
					bad[i] ^= 1 << bit
					if err := got.UnmarshalBinary(bad); !errors.Is(err, ErrSnapshot) {
						t.Fatalf("byte %d bit %d flipped: %v, want ErrSnapshot", i, bit, err)
					}
					bad[i] ^= 1 << bit
				}
			}
			if fmt.Sprint(got) != keep {
				t.Error("a failed UnmarshalBinary changed the snapshot")
			}
		})
	}
	t.Run("non-finite", func(t *testing.T) {
		s := Snapshot{Learner: NameLSTM, Weights: []float32{1, float32(math.Inf(1))}}
		b, _ := s.MarshalBinary()
		if err := new(Snapshot).UnmarshalBinary(b); !errors.Is(err, ErrSnapshot) {
			t.Errorf("infinite weight: %v, want ErrSnapshot", err)
		}
	})
}

// BenchmarkMix mixes a learner with 7 peers, as a partition of 8 does at
// each mixing round, at the default and the benchmarks' larger shape.
func BenchmarkMix(b *testing.B) {
	for _, s := range []struct{ layers, hidden int }{{2, 32}, {2, 64}} {
		b.Run(fmt.Sprintf("%dx%d/peers=7", s.layers, s.hidden), func(b *testing.B) {
			cfg := DefaultLearnerConfig()
			cfg.Layers, cfg.Hidden = s.layers, s.hidden
			m := newLearner(b, NameLSTM, cfg, Config{Horizon: 28})
			peers := make([]*Snapshot, 7)
			for i := range peers {
				peers[i] = snapshotOf(m, int32(i+1))
			}
			var own Snapshot
			mx := m.(Mixable)
			if err := mx.Mix(peers, 1); err != nil { // allocate the bases
				b.Fatal(err)
			}
			mx.Snapshot(&own)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				mx.Snapshot(&own)
				if err := mx.Mix(peers, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(own.EncodedLen()), "bytes/snapshot")
		})
	}
}

// patternSeries returns n series of length days sharing one pattern: a
// weekly profile and a price response common to all, on levels of their
// own, with Poisson noise. Split by i%parts, each part sees only its
// share of the evidence for the pattern.
func patternSeries(n, days int, seed uint64) []Input {
	r := rand.New(rand.NewPCG(seed, 7))
	profile := [7]float64{0.3, 0.6, 1, 1.4, 2.2, 3, 0.5}
	in := make([]Input, n)
	for i := range in {
		level := 0.5 + 3*r.Float64()
		y := make([]float64, days)
		price := make([]float32, days)
		promo := make([]float32, days)
		for d := range y {
			price[d] = 2
			lam := level * profile[d%7]
			if r.Float64() < 0.15 {
				promo[d], price[d] = 1, 1.4
				lam *= 2.5
			}
			y[d] = float64(lstmPoisson(r, lam))
		}
		in[i] = Input{Y: y, Price: price, Promo: promo, Period: 7}
	}
	return in
}

// TestMixPattern trains, on series sharing one pattern, one learner on all
// of them, 8 learners on an eighth each, and 8 learners on an eighth each
// that mix at every close by plain averaging, and scores each on its
// series' next 28 days at the last 28 origins. Mixing must reach the one
// learner's accuracy (within 3%) and beat the learners apart, which must
// not reach it (at least 2% worse): the pattern is learned from all
// series only when the partitions learn together.
func TestMixPattern(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 17 learners")
	}
	const n, days, parts, H, every = 64, 230, 8, 28, 1
	all := patternSeries(n, days, 3)
	cfg := LearnerConfig{Layers: 1, Hidden: 16, Window: 28, Average: 0.99}
	mcfg := Config{Horizon: H}
	run := func(parts int, mix bool) float64 {
		ls := make([]Learner, parts)
		for p := range ls {
			ls[p] = newLearner(t, NameLSTM, cfg, mcfg)
		}
		snaps := make([]*Snapshot, parts)
		for p := range snaps {
			snaps[p] = &Snapshot{Partition: int32(p)}
		}
		var abs, count float64
		dst := lstmForecasts(mcfg, n)
		for end := 30; end+H <= days; end++ {
			for p, l := range ls {
				var in []Input
				for i := p; i < n; i += parts {
					s := all[i]
					s.Y, s.Price, s.Promo = s.Y[:end], s.Price[:end], s.Promo[:end]
					in = append(in, s)
				}
				l.Learn(in)
				if end < days-H-28 {
					continue
				}
				l.ForecastBatch(dst[:len(in)], in)
				for k := range in {
					f, y := dst[k], all[p+k*parts].Y[end:end+H]
					for h := range H {
						abs += math.Abs(f.Mean[h] - y[h])
						count++
					}
				}
			}
			if mix && end%every == 0 {
				for p, l := range ls {
					l.(Mixable).Snapshot(snaps[p])
				}
				for p, l := range ls {
					peers := slices.Concat(snaps[:p], snaps[p+1:])
					if err := l.(Mixable).Mix(peers, 1); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return abs / count
	}
	one, apart, mixed := run(1, false), run(parts, false), run(parts, true)
	t.Logf("MAE over the last 28 origins: one learner %.4f, 8 apart %.4f (%+.1f%%), 8 mixing %.4f (%+.1f%%)",
		one, apart, 100*(apart/one-1), mixed, 100*(mixed/one-1))
	if mixed > 1.03*one {
		t.Errorf("8 mixing learners: MAE %.4f, want within 3%% of one learner's %.4f", mixed, one)
	}
	if mixed >= apart {
		t.Errorf("8 mixing learners: MAE %.4f, want below the %.4f of 8 apart", mixed, apart)
	}
	if apart < 1.02*one {
		t.Errorf("8 learners apart: MAE %.4f, want at least 2%% worse than one learner's %.4f", apart, one)
	}
}
