package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAppendReplay checks the replay draw: min(r, depth) distinct offsets
// in [1, depth], the same for the same generator state, and over many
// draws every offset of the depth (a draw stuck on recent offsets, or
// never reaching the deepest, fails).
func TestAppendReplay(t *testing.T) {
	cases := []struct {
		name     string
		depth, r int
		want     int
	}{
		{"no history", 0, 3, 0},
		{"negative depth", -2, 3, 0},
		{"fewer windows than asked", 2, 5, 2},
		{"one of many", 28, 1, 1},
		{"several", 28, 4, 4},
		{"all", 28, 28, 28},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := appendReplay([]example{{idx: 9}}, rand.NewPCG(3, 4), 7, tc.depth, tc.r)
			b := appendReplay(nil, rand.NewPCG(3, 4), 7, tc.depth, tc.r)
			if len(a) != 1+tc.want || a[0] != (example{idx: 9}) {
				t.Fatalf("appended %v, want %d after the first", a, tc.want)
			}
			if !slices.Equal(a[1:], b) {
				t.Fatalf("same generator state: %v vs %v", a[1:], b)
			}
			seen := map[int32]bool{}
			for _, e := range b {
				if e.idx != 7 || e.back < 1 || int(e.back) > tc.depth || seen[e.back] {
					t.Fatalf("bad or repeated example %+v in %v", e, b)
				}
				seen[e.back] = true
			}
		})
	}
	rng := rand.NewPCG(1, 2)
	var count [ReplayDepth + 1]int
	var dst []example
	for range 2800 {
		dst = appendReplay(dst[:0], rng, 0, ReplayDepth, 1)
		count[dst[0].back]++
	}
	for k := 1; k <= ReplayDepth; k++ {
		if count[k] < 50 || count[k] > 150 {
			t.Errorf("offset %d drawn %d times in 2800, want about 100", k, count[k])
		}
	}
}

// TestLearnReplay checks what Learn trains on with Replay: with one
// example per step, the steps count the examples, which are the newest
// of every series with more than H buckets plus up to Replay earlier ones
// that its history holds; LearnStats.Examples counts the newest only.
func TestLearnReplay(t *testing.T) {
	const h = 4 // lstmSmallCfg's horizon
	cases := []struct {
		name    string
		replay  int
		lengths []int
		want    int // examples trained on
	}{
		{"off", 0, []int{40, 40, 3}, 2},
		{"long histories", 3, []int{40, 40}, 8},
		{"history of the newest only", 3, []int{h + 1}, 1},
		{"history of two earlier windows", 3, []int{h + 3}, 3},
		{"more than the depth asked", ReplayDepth, []int{40, h + 2}, 1 + ReplayDepth + 2},
		{"too short for any", 2, []int{h, 0}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := learnerSmall
			cfg.MiniBatch, cfg.Replay = 1, tc.replay
			m := lstmNew(t, cfg, lstmSmallCfg)
			in := lstmTestSeries(len(tc.lengths), 40, 5)
			fresh := 0
			for i, n := range tc.lengths {
				in[i] = lstmCut(in[i:i+1], n)[0]
				if n > h {
					fresh++
				}
			}
			st := m.Learn(in)
			if st.Steps+st.Skipped != tc.want || st.Examples != fresh {
				t.Errorf("LearnStats %+v, want %d steps and %d examples", st, tc.want, fresh)
			}
		})
	}
}

// TestReplayWindows checks that a replayed example is the example its
// series' history completed back buckets earlier: its features, scale,
// padding and targets equal those of the newest example of the history
// cut back buckets shorter.
func TestReplayWindows(t *testing.T) {
	in := lstmTestSeries(1, 30, 8)
	in[0].Y[20] = 0 // a gap for the buckets-since-sale feature
	for _, back := range []int32{0, 1, 5, 15, 25} {
		m := lstmNew(t, learnerSmall, lstmSmallCfg)
		m.Learn(in) // size the buffers
		g := &m.global
		load := func(in []Input, e example) (x []float32, tgt []float32, scale float64, pad int32) {
			g.loadExamples(in, []example{e})
			rb := g.train.rowData()
			bx, ld, _, rows := g.train.featureDst(0)
			for t := range g.sh.window {
				x = append(x, bx[t*rows*ld:][:g.sh.features]...)
			}
			return x, slices.Clone(rb.tgt[:g.sh.horizon]), rb.scale[0], rb.pad[0]
		}
		x, tgt, scale, pad := load(in, example{back: back})
		wx, wtgt, wscale, wpad := load(lstmCut(in, 30-int(back)), example{})
		if !slices.Equal(x, wx) || !slices.Equal(tgt, wtgt) || scale != wscale || pad != wpad {
			t.Errorf("back %d: replayed example differs from the cut history's newest:\nx %v\nwant %v\ntargets %v want %v, scale %v want %v, pad %d want %d",
				back, x, wx, tgt, wtgt, scale, wscale, pad, wpad)
		}
	}
}

// TestLearnBatches checks how Learn splits a close's examples into
// minibatches, one step each: ceil(n/MiniBatch), but at least MinBatches
// while there are that many examples, times StepsPerClose.
func TestLearnBatches(t *testing.T) {
	cases := []struct {
		name                        string
		series, miniBatch, minBatch int
		passes, want                int
	}{
		{"one minibatch", 9, 16, 1, 1, 1},
		{"minibatch size rules", 9, 4, 1, 1, 3},
		{"min batches rule", 9, 16, 4, 1, 4},
		{"min batches rule, two passes", 9, 16, 4, 2, 8},
		{"minibatch size rules over min batches", 9, 2, 3, 1, 5},
		{"fewer examples than min batches", 3, 16, 8, 1, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := learnerSmall
			cfg.MiniBatch, cfg.MinBatches, cfg.StepsPerClose = tc.miniBatch, tc.minBatch, tc.passes
			m := lstmNew(t, cfg, lstmSmallCfg)
			st := m.Learn(lstmTestSeries(tc.series, 20, 3))
			if st.Steps+st.Skipped != tc.want || st.Examples != tc.series {
				t.Errorf("LearnStats %+v, want %d steps over %d examples", st, tc.want, tc.series)
			}
		})
	}
}

// TestLearningRateDecay checks the schedule of DecaySteps: constant up to
// step DecaySteps, then LearningRate·sqrt(DecaySteps/t); and that Learn
// takes each step with its scheduled rate.
func TestLearningRateDecay(t *testing.T) {
	cases := []struct {
		name  string
		decay int
		step  int64
		want  float64
	}{
		{"constant", 0, 1_000_000, 0.01},
		{"before the decay", 100, 50, 0.01},
		{"at the decay", 100, 100, 0.01},
		{"four times later", 100, 400, 0.005},
		{"a hundred times later", 100, 10_000, 0.001},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := LearnerConfig{LearningRate: 0.01, DecaySteps: tc.decay}
			if got := c.rate(tc.step); math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("rate(%d) = %v, want %v", tc.step, got, tc.want)
			}
		})
	}
	cfg := learnerSmall
	cfg.LearningRate, cfg.DecaySteps, cfg.MiniBatch = 0.01, 2, 1
	m := lstmNew(t, cfg, lstmSmallCfg)
	st := m.Learn(lstmTestSeries(8, 20, 3))
	if st.Steps != 8 || m.hp.lr != 0.01*math.Sqrt(2.0/8) {
		t.Errorf("after %d steps Learn's rate is %v, want %v", st.Steps, m.hp.lr, 0.01*math.Sqrt(2.0/8))
	}
	if got := m.cfg.LearningRate; got != 0.01 {
		t.Errorf("the configured rate changed to %v", got)
	}
}
