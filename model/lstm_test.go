package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// lstmPoisson draws a Poisson variate (Knuth's method, fine for small
// means).
func lstmPoisson(r *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// lstmTestSeries returns n synthetic daily series of the given length:
// weekly-seasonal Poisson demand of various levels (many intermittent),
// with prices that drop 20% under promotion, deterministic in seed.
func lstmTestSeries(n, length int, seed uint64) []Input {
	r := rand.New(rand.NewPCG(seed, 99))
	in := make([]Input, n)
	for i := range in {
		level := 0.1 + 4*r.Float64()
		base := float32(1 + 9*r.Float64())
		y := make([]float64, length)
		price := make([]float32, length)
		promo := make([]float32, length)
		for t := range y {
			lam := level * (1 + 0.4*math.Sin(2*math.Pi*float64(t+i)/7))
			price[t] = base
			if r.Float64() < 0.1 {
				promo[t] = float32(r.Float64())
				lam *= 1 + float64(promo[t])
				price[t] = 0.8 * base
			}
			y[t] = float64(lstmPoisson(r, lam))
		}
		in[i] = Input{Y: y, Price: price, Promo: promo, Start: int64(1000 + i%5), Period: 7}
	}
	return in
}

// TestLSTMGradient checks the analytic gradient of every parameter block
// against central finite differences (see checkGradient).
func TestLSTMGradient(t *testing.T) {
	testGradients(t, gradCases, func(sh shape) *rnnNet[float64] { return newRNNNet[float64](sh, lstmCell, gradTaus, true) })
}

// lstmSmall is a quick model configuration for the behavioural tests.
var lstmSmall = LearnerConfig{Layers: 2, Hidden: 8, Window: 10, MiniBatch: 4}

// lstmSmallCfg is the forecaster configuration of the behavioural tests.
var lstmSmallCfg = Config{Horizon: 4, Levels: []float64{0.1, 0.5, 0.9}}

func lstmNew(t testing.TB, cfg LearnerConfig, mcfg Config) *LSTM {
	t.Helper()
	m, err := NewLSTM(cfg, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lstmForecasts returns n forecasts sized for cfg.
func lstmForecasts(cfg Config, n int) []*Forecast {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	dst := make([]*Forecast, n)
	for i := range dst {
		dst[i] = NewForecast(cfg)
	}
	return dst
}

// lstmSameBits reports whether a and b are bit-identical.
func lstmSameBits[T float](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(float64(a[i])) != math.Float64bits(float64(b[i])) {
			return false
		}
	}
	return true
}

func lstmSameForecasts(a, b []*Forecast) bool {
	for i := range a {
		if !lstmSameBits(a[i].Mean, b[i].Mean) || !lstmSameBits(a[i].Q, b[i].Q) {
			return false
		}
	}
	return true
}

func lstmAllFinite(m *LSTM) bool {
	ws := [][]float32{m.net.params, m.net.m, m.net.v}
	if m.avg != nil {
		ws = append(ws, m.avg.params)
	}
	for _, s := range ws {
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}

func TestLSTMConfig(t *testing.T) {
	m := lstmNew(t, DefaultLearnerConfig(), Config{})
	if got, want := m.Version(), "2x32/steps=0"; got != want {
		t.Errorf("Version() = %q, want %q", got, want)
	}
	if m.Name() != NameLSTM {
		t.Errorf("Name() = %q", m.Name())
	}
	if m.sh != (shape{layers: 2, hidden: 32, window: 56, horizon: 28, levels: 3, features: 8}) {
		t.Errorf("default shape %+v", m.sh)
	}
	if m.cfg.MiniBatch != 512 || m.cfg.StepsPerClose != 1 || m.hp != (hyper{3e-3, 0.9, 0.999, 1e-8, 1e-4, 1}) || m.cfg.Seed != 1 {
		t.Errorf("defaults %+v %+v", m.cfg, m.hp)
	}
	if m.cfg.Average != 0.995 || m.avg == nil {
		t.Errorf("default Average %v, averaging on: %v", m.cfg.Average, m.avg != nil)
	}
	// Zero is a value, not "the default", where it means off.
	if m := lstmNew(t, LearnerConfig{ClipNorm: math.Inf(1)}, Config{}); m.hp.wd != 0 || !math.IsInf(m.hp.clip, 1) || m.cfg.Average != 0 || m.avg != nil {
		t.Errorf("zero WeightDecay and Average, ClipNorm +Inf: %+v, averaging on: %v", m.hp, m.avg != nil)
	}
	for _, tc := range []struct {
		name string
		cfg  LearnerConfig
		mcfg Config
		want string
	}{
		{"three layers", LearnerConfig{Layers: 3}, Config{}, "LearnerConfig.Layers 3"},
		{"negative hidden", LearnerConfig{Hidden: -1}, Config{}, "LearnerConfig.Hidden -1"},
		{"huge window", LearnerConfig{Window: 1 << 20}, Config{}, "LearnerConfig.Window 1048576"},
		{"negative minibatch", LearnerConfig{MiniBatch: -5}, Config{}, "LearnerConfig.MiniBatch -5"},
		{"negative steps", LearnerConfig{StepsPerClose: -1}, Config{}, "LearnerConfig.StepsPerClose -1"},
		{"negative min batches", LearnerConfig{MinBatches: -1}, Config{}, "LearnerConfig.MinBatches -1"},
		{"negative decay", LearnerConfig{DecaySteps: -1}, Config{}, "LearnerConfig.DecaySteps -1"},
		{"negative replay", LearnerConfig{Replay: -1}, Config{}, "LearnerConfig.Replay -1"},
		{"replay deeper than the history", LearnerConfig{Replay: ReplayDepth + 1}, Config{}, "LearnerConfig.Replay 29"},
		{"negative learning rate", LearnerConfig{LearningRate: -0.1}, Config{}, "LearnerConfig.LearningRate -0.1"},
		{"NaN learning rate", LearnerConfig{LearningRate: math.NaN()}, Config{}, "LearnerConfig.LearningRate NaN"},
		{"beta1 one", LearnerConfig{Beta1: 1}, Config{}, "LearnerConfig.Beta1 1"},
		{"beta2 negative", LearnerConfig{Beta2: -0.5}, Config{}, "LearnerConfig.Beta2 -0.5"},
		{"eps infinite", LearnerConfig{Eps: math.Inf(1)}, Config{}, "LearnerConfig.Eps +Inf"},
		{"weight decay NaN", LearnerConfig{WeightDecay: math.NaN()}, Config{}, "LearnerConfig.WeightDecay NaN"},
		{"negative weight decay", LearnerConfig{WeightDecay: -1}, Config{}, "LearnerConfig.WeightDecay -1"},
		{"negative average", LearnerConfig{Average: -1}, Config{}, "LearnerConfig.Average -1"},
		{"clip negative", LearnerConfig{ClipNorm: -1}, Config{}, "LearnerConfig.ClipNorm -1"},
		{"average one", LearnerConfig{Average: 1}, Config{}, "LearnerConfig.Average 1"},
		{"average NaN", LearnerConfig{Average: math.NaN()}, Config{}, "LearnerConfig.Average NaN"},
		{"calendar width", LearnerConfig{Calendar: lstmCalendar{width: -2}}, Config{}, "LearnerConfig.Calendar width -2"},
		{"bad horizon", LearnerConfig{}, Config{Horizon: -3}, "Horizon -3"},
		{"bad levels", LearnerConfig{}, Config{Levels: []float64{0.5, 0.2}}, "not strictly increasing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLSTM(tc.cfg, tc.mcfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewLSTM error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// lstmCalendar is a test Calendar: a weekend flag, an event every tenth
// bucket and the bucket index mod 3, then zeros up to width.
type lstmCalendar struct{ width int }

func (c lstmCalendar) Width() int { return c.width }

func (c lstmCalendar) Covariates(b int64, dst []float32) {
	clear(dst[:c.width])
	v := []float32{0, 0, float32(((b % 3) + 3) % 3)}
	if d := ((b % 7) + 7) % 7; d >= 5 {
		v[0] = 1
	}
	if b%10 == 0 {
		v[1] = 1
	}
	copy(dst[:c.width], v)
}

func TestLSTMFeatures(t *testing.T) {
	const L = 6
	sin, cos := func(k int) float64 { return math.Sin(2 * math.Pi * float64(k) / 7) }, func(k int) float64 { return math.Cos(2 * math.Pi * float64(k) / 7) }
	for _, tc := range []struct {
		name  string
		cal   Calendar
		in    Input
		end   int
		scale float64
		pad   int
		want  [][]float64 // per step
	}{
		{
			name: "full window, prices, promotion, gaps, weekday",
			in: Input{
				Y:     []float64{3, 0, 0, 2, 0, 0, 0, 4, 1},
				Price: []float32{9, 9, 2, 2, 0, 4, 4, 3, 3},
				Promo: []float32{0, 0, 0.5, 0, 0, 2, float32(math.NaN()), 0, 0},
				Start: 12, Period: 7,
			},
			end: 8, scale: 2, pad: 0, // window Y[2:8] = 0 2 0 0 0 4: mean 1; mean price 3
			want: [][]float64{
				{0, 1, 2.0 / 3, 0.5, 1, 2.0 / 28, sin(0), cos(0)},
				{1, 1, 2.0 / 3, 0, 0, 0, sin(1), cos(1)},
				{0, 1, 0, 0, 1, 1.0 / 28, sin(2), cos(2)},
				{0, 1, 4.0 / 3, 1, 1, 2.0 / 28, sin(3), cos(3)},
				{0, 1, 4.0 / 3, 0, 1, 3.0 / 28, sin(4), cos(4)},
				{2, 1, 1, 0, 0, 0, sin(5), cos(5)},
			},
		},
		{
			name: "left padding, no prices, never sold, calendar",
			cal:  lstmCalendar{width: 4},
			in:   Input{Y: []float64{0, 0, 0}, Start: 29, Period: 7},
			end:  3, scale: 1, pad: 3,
			want: [][]float64{
				{0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				{0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				{0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
				{0, 1, 0, 0, 1, 1.0 / 28, 0, 0, 2, 0}, // bucket 29: weekday 1, mod 3 = 2
				{0, 1, 0, 0, 1, 2.0 / 28, 0, 1, 0, 0}, // bucket 30: event, mod 3 = 0
				{0, 1, 0, 0, 1, 3.0 / 28, 0, 0, 1, 0},
			},
		},
		{
			name: "gap capped at 28 and counted from before the window",
			in:   Input{Y: append(append([]float64{5}, make([]float64, 40)...), 7), Start: -3, Period: 0},
			end:  42, scale: 1 + 7.0/6, pad: 0,
			want: [][]float64{
				{0, 1, 0, 0, 1, 1, 0, 1}, // 36 buckets since the sale at 0, but only 28 are looked at
				{0, 1, 0, 0, 1, 1, 0, 1},
				{0, 1, 0, 0, 1, 1, 0, 1},
				{0, 1, 0, 0, 1, 1, 0, 1},
				{0, 1, 0, 0, 1, 1, 0, 1},
				{7 / (1 + 7.0/6), 1, 0, 0, 0, 0, 0, 1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nf := baseFeatures + 2
			var calBuf []float32
			if tc.cal != nil {
				nf = baseFeatures + tc.cal.Width()
				calBuf = make([]float32, tc.cal.Width())
			}
			f := featurizer{window: L, features: nf, cal: tc.cal, calBuf: calBuf}
			const rows, r, ld = 3, 1, 13
			x := make([]float64, L*rows*ld)
			for i := range x {
				x[i] = -99 // padding must be cleared, other columns left alone
			}
			norm, pad := buildFeatures(&f, &tc.in, tc.end, x, ld, r, rows, 0, nil, false)
			scale := norm.scale
			if math.Abs(scale-tc.scale) > 1e-12 || pad != tc.pad {
				t.Errorf("scale, pad = %v, %d, want %v, %d", scale, pad, tc.scale, tc.pad)
			}
			for step, want := range tc.want {
				row := x[(step*rows+r)*ld:][:ld]
				for j, w := range want {
					if math.Abs(row[j]-w) > 1e-12 {
						t.Errorf("step %d feature %d = %v, want %v", step, j, row[j], w)
					}
				}
				if row[nf] != -99 {
					t.Errorf("step %d: column %d overwritten", step, nf)
				}
			}
		})
	}
}

func TestLSTMLearnExamples(t *testing.T) {
	m := lstmNew(t, LearnerConfig{Layers: 1, Hidden: 4, Window: 8, MiniBatch: 3, StepsPerClose: 2}, lstmSmallCfg)
	in := lstmTestSeries(9, 20, 5)
	in[0].Y = in[0].Y[:4] // H buckets: no input, skipped
	in[1].Y = in[1].Y[:5] // one input bucket: padded
	in[2].Y = nil
	st := m.Learn(in)
	// 7 examples in ceil(7/3) = 3 minibatches, twice.
	if st.Examples != 7 || st.Steps+st.Skipped != 6 || st.Skipped != 0 || !(st.Loss > 0) {
		t.Errorf("LearnStats %+v, want 7 examples, 6 steps", st)
	}
	if m.Version() != "1x4/steps=6" {
		t.Errorf("Version %q", m.Version())
	}
	if st := m.Learn(in[:3]); st != (LearnStats{Examples: 1, Steps: 2, Loss: st.Loss}) {
		t.Errorf("LearnStats %+v, want 1 example, 2 steps", st)
	}
	if st := m.Learn(nil); st != (LearnStats{}) {
		t.Errorf("LearnStats of nothing %+v", st)
	}
}

// lstmCut returns the inputs truncated to their first n buckets.
func lstmCut(in []Input, n int) []Input {
	out := make([]Input, len(in))
	for i, s := range in {
		k := min(n, len(s.Y))
		out[i] = Input{Y: s.Y[:k], Price: s.Price[:k], Promo: s.Promo[:k], Start: s.Start, Period: s.Period}
	}
	return out
}

// TestLSTMAverage checks the forecasting average of the weights: training
// is the same with and without it, the average follows the ramped
// exponential moving average of the trained weights (computed here in
// float64), forecasts run on it, and a version 1 checkpoint (without an
// average) loads with the average at its weights.
func TestLSTMAverage(t *testing.T) {
	in := lstmTestSeries(9, 40, 12)
	avgCfg, latestCfg := lstmSmall, lstmSmall
	avgCfg.Average, latestCfg.Average = 0.9, 0
	avgCfg.MiniBatch, latestCfg.MiniBatch = 100, 100 // one step per call
	a := lstmNew(t, avgCfg, lstmSmallCfg)
	b := lstmNew(t, latestCfg, lstmSmallCfg)
	ref := make([]float64, len(b.net.params))
	for i, v := range b.net.params {
		ref[i] = float64(v)
	}
	fa := lstmForecasts(lstmSmallCfg, len(in))
	for n := 10; n <= 40; n++ {
		cut := lstmCut(in, n)
		a.Learn(cut)
		a.ForecastBatch(fa, cut) // packs the average, which must not go stale
		if st := b.Learn(cut); st.Steps != 1 {
			t.Fatalf("bucket %d: %d steps, want 1", n, st.Steps)
		}
		d := min(0.9, float64(1+b.net.step)/float64(10+b.net.step))
		for i, v := range b.net.params {
			ref[i] = d*ref[i] + (1-d)*float64(v)
		}
	}
	if !lstmSameBits(a.net.params, b.net.params) || !lstmSameBits(a.net.m, b.net.m) {
		t.Fatal("averaging changed training")
	}
	var worst float64
	for i, v := range a.avg.params {
		worst = max(worst, math.Abs(float64(v)-ref[i]))
	}
	if worst > 1e-5 {
		t.Fatalf("average off the float64 reference by %g", worst)
	}
	if lstmSameBits(a.avg.params, a.net.params) {
		t.Fatal("average equals the latest weights")
	}

	// Forecasts of a run on the average equal those of a model whose
	// latest weights are the average.
	c := lstmNew(t, latestCfg, lstmSmallCfg)
	copy(c.net.params, a.avg.params)
	c.net.pack()
	fb, fc := lstmForecasts(lstmSmallCfg, len(in)), lstmForecasts(lstmSmallCfg, len(in))
	a.ForecastBatch(fa, in)
	b.ForecastBatch(fb, in)
	c.ForecastBatch(fc, in)
	if !lstmSameForecasts(fa, fc) {
		t.Fatal("forecasts do not run on the averaged weights")
	}
	if lstmSameForecasts(fa, fb) {
		t.Fatal("averaged and latest weights forecast alike")
	}
	// Carried steps (keyed series whose windows advance) too.
	for end := 30; end <= 40; end++ {
		slid := lstmSlide(in, end, 10)
		a.ForecastBatch(fa, slid)
		c.ForecastBatch(fc, slid)
		if !lstmSameForecasts(fa, fc) {
			t.Fatalf("window ending %d: carried forecasts do not run on the averaged weights", end)
		}
	}

	// Version 1: no average block.
	data := lstmMust(a.MarshalBinary())
	p := len(a.net.params)
	v1 := append(bytes.Clone(data[:len(data)-4-4*p]), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(v1[len(lstmMagic):], 1)
	v1 = lstmResum(v1)
	d := lstmNew(t, avgCfg, lstmSmallCfg)
	if err := d.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	if !lstmSameBits(d.net.params, a.net.params) || !lstmSameBits(d.avg.params, a.net.params) {
		t.Fatal("version 1: the average does not start at the weights")
	}
	fd := lstmForecasts(lstmSmallCfg, len(in))
	d.ForecastBatch(fd, in)
	if !lstmSameForecasts(fd, fb) {
		t.Fatal("version 1: forecasts do not run on the loaded weights")
	}

	// Restoring over a model that has forecast repacks the average.
	if err := d.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	a.ForecastBatch(fa, in)
	d.ForecastBatch(fd, in)
	if !lstmSameForecasts(fd, fa) {
		t.Fatal("after a restore: forecasts run on the average it replaced")
	}

	// Skipped steps leave the average alone.
	before := slices.Clone(a.avg.params)
	spoilt := lstmCut(in, 40)
	for i := range spoilt {
		spoilt[i].Y = slices.Clone(spoilt[i].Y)
		spoilt[i].Y[30] = math.NaN()
	}
	if st := a.Learn(spoilt); st.Skipped == 0 || st.Steps != 0 {
		t.Fatalf("spoilt batch: %+v, want skipped steps only", st)
	}
	if !lstmSameBits(before, a.avg.params) {
		t.Fatal("a skipped step moved the average")
	}
}

// lstmResum recomputes the checksum of a checkpoint after an edit.
func lstmResum(b []byte) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], ckCRC))
	return b
}

func lstmMust(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzLSTMUnmarshal feeds arbitrary bytes to UnmarshalBinary of a tiny
// model (checkpoints of about 600 bytes, so the fuzzer's minimizer stays
// quick): it must never panic, must fail with one of the two sentinels,
// and anything it accepts must re-marshal to the same bytes.
func FuzzLSTMUnmarshal(f *testing.F) {
	cfg, mcfg := LearnerConfig{Layers: 1, Hidden: 1, Window: 3}, Config{Horizon: 1, Levels: []float64{0.5}}
	src, _ := NewLSTM(cfg, mcfg)
	src.Learn(lstmTestSeries(5, 20, 9))
	good, _ := src.MarshalBinary()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:40])
	f.Add([]byte(lstmMagic))
	f.Add([]byte{})
	f.Add(lstmResum(append(bytes.Clone(good[:60]), 0, 0, 0, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := NewLSTM(cfg, mcfg)
		err := m.UnmarshalBinary(data)
		if err != nil {
			if !errors.Is(err, ErrLSTMCheckpoint) && !errors.Is(err, ErrLSTMMismatch) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if again := lstmMust(m.MarshalBinary()); !bytes.Equal(again, data) {
			t.Fatal("accepted checkpoint does not round-trip")
		}
		if !lstmAllFinite(m) {
			t.Fatal("accepted non-finite weights")
		}
	})
}

// lstmTrendSeries returns n daily series of the given length: a level of
// 5..20, a linear trend of up to ±0.02 a day, a weekly sine of 20..50% of
// the level and Gaussian noise of 15% of the level, clamped at zero.
func lstmTrendSeries(n, length int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 6))
	ys := make([][]float64, n)
	for i := range ys {
		level := 5 + 15*r.Float64()
		slope := (r.Float64() - 0.5) * 0.04
		amp := level * (0.2 + 0.3*r.Float64())
		phase := float64(r.IntN(7))
		sigma := 0.15 * level
		ys[i] = make([]float64, length)
		for t := range length {
			ys[i][t] = max(0, level+slope*float64(t)+amp*math.Sin(2*math.Pi*(float64(t)+phase)/7)+sigma*r.NormFloat64())
		}
	}
	return ys
}
