package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// This file holds the part of the global learners that does not depend on
// their network: configuration, the minibatch loop of Learn, the weight
// averaging, the chunks and carried states of ForecastBatch and the
// counters. Each learner type embeds a global instantiated with its
// network.

// network is a global learner's network, as its driver uses it. N is a
// pointer type; B is the type of its pass buffers.
type network[T float, B buffers[T]] interface {
	comparable
	opt() *optim[T]
	// init draws fresh parameters from rng and resets the optimizer.
	init(rng *rand.PCG)
	// pack refreshes the packed copies of the weights after they change.
	pack()
	newBufs(rows int, train bool) B
	// forward leaves the head pre-activations of the rows in bf in its
	// rowBufs' out; backward takes their gradient there and writes the
	// parameter gradients.
	forward(bf B)
	backward(bf B)
	lossGrad(rb *rowBufs[T]) float64
}

// buffers are the buffers of one pass of a network over a batch of rows.
type buffers[T float] interface {
	comparable
	rowData() *rowBufs[T]
	// setRows lays the buffers out for a pass over rows ≤ cap rows.
	setRows(rows int)
	// featureDst returns where the features of row r go, as the x, ld, r
	// and rows arguments of buildFeatures.
	featureDst(r int) (x []T, ld, row, rows int)
}

// recurrent is a network whose forecasts can step a carried state (see
// LearnerConfig.Refresh) instead of running a window in full.
type recurrent[B any] interface {
	// stateLen returns the length of a row's state.
	stateLen() int
	// newStepBufs allocates forecasting buffers of one step.
	newStepBufs(rows int) B
	// forwardFrom runs like forward from the states loaded into bf.
	forwardFrom(bf B)
	loadState(bf B, r int, src []float32)
	saveState(bf B, r int, dst []float32)
}

// trainStep runs forward, loss, backward and update on the batch in bf. It
// returns the batch loss and whether the step was taken.
func trainStep[T float, B buffers[T], N network[T, B]](n N, bf B, hp *hyper) (float64, bool) {
	n.forward(bf)
	loss := n.lossGrad(bf.rowData())
	if !finite(loss) {
		return loss, false
	}
	n.backward(bf)
	if !n.opt().update(hp) {
		return loss, false
	}
	n.pack()
	return loss, true
}

// learnerSpec is what sets one learner's driver apart from another's.
type learnerSpec[N any] struct {
	name string // as in the learner registry
	// magic and version identify the learner's checkpoints (see
	// checkpoint.go); noAverage, when not 0, is an older format version
	// without the average block that still loads.
	magic              string
	version, noAverage uint32
	heads              bool // the architecture has attention heads
	// build returns a network with zero parameters; without train it only
	// forecasts.
	build func(sh shape, taus []float64, train bool) N
}

// global is the driver of a global learner with network N.
type global[N network[float32, B], B buffers[float32]] struct {
	spec   *learnerSpec[N]
	cfg    LearnerConfig
	levels []float64
	sh     shape
	hp     hyper
	net    N // the trained weights
	// avg holds the weights forecasts use, the moving average of net's
	// (see LearnerConfig.Average); nil when Average is 0, and forecasts use
	// net. avgPacked is false while avg's packed copies lag its params.
	avg       N
	avgPacked bool
	feat      featurizer
	rng       *rand.PCG

	train    B         // nil until the first Learn
	fc       B         // nil until the first ForecastBatch
	fs       B         // one-step buffers; nil until the first carried step
	order    []example // examples of Learn, in training order
	rows     []int32   // series of the current forecast chunk run in full
	stepRows []int32   // series of the current chunk that step their state
	slots    []int32   // carried-state slots of stepRows

	// carry holds the series' carried states; nil when Refresh is 1 or
	// the network is not recurrent.
	carry *carries

	// Totals over the model's life (checkpointed).
	examples, steps, skipped int64

	// mixBase and mixBaseAvg are the weights and forecasting weights the
	// last Mix left, nil before the first (see Mixable); fp caches the
	// fingerprint of the configuration, 0 until first needed.
	mixBase, mixBaseAvg []float32
	fp                  uint64
}

// forecastChunk is the largest number of series forecast in one pass.
const forecastChunk = 256

// learnerStream is the PCG stream word of a learner's random numbers.
const learnerStream = 0x7473_6c73_746d_0001

// newGlobal returns the driver of a learner with freshly initialised
// weights for the horizon and quantile levels of mcfg. It returns an
// error naming the field and value of an invalid configuration.
func newGlobal[N network[float32, B], B buffers[float32]](cfg LearnerConfig, mcfg Config, spec *learnerSpec[N]) (global[N, B], error) {
	if err := mcfg.Validate(); err != nil {
		return global[N, B]{}, err
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return global[N, B]{}, err
	}
	g := global[N, B]{
		spec:   spec,
		cfg:    cfg,
		levels: slices.Clone(mcfg.Levels),
		hp: hyper{
			lr: cfg.LearningRate, beta1: cfg.Beta1, beta2: cfg.Beta2,
			eps: cfg.Eps, wd: cfg.WeightDecay, clip: cfg.ClipNorm,
		},
		feat: newFeaturizer(cfg),
		rng:  rand.NewPCG(cfg.Seed, learnerStream),
	}
	g.sh = shape{
		layers: cfg.Layers, hidden: cfg.Hidden, window: cfg.Window,
		horizon: mcfg.Horizon, levels: len(mcfg.Levels), features: g.feat.features,
	}
	if spec.heads {
		g.sh.heads = cfg.Heads
	}
	g.net = spec.build(g.sh, g.levels, true)
	g.net.init(g.rng)
	if cfg.Average > 0 {
		g.avg = spec.build(g.sh, g.levels, false)
		copy(g.avg.opt().params, g.net.opt().params)
	}
	if r, ok := any(g.net).(recurrent[B]); ok && cfg.Refresh > 1 {
		g.carry = newCarries(cfg.Refresh, r.stateLen())
	}
	return g, nil
}

// Steps returns the number of optimizer steps the model has taken over its
// life, checkpoints included.
func (g *global[N, B]) Steps() int64 { return g.steps }

// Version describes the architecture and training progress, for the
// model_version of forecast records: "2x64/steps=1234" is a 2-layer,
// 64-unit network after 1234 optimizer steps.
func (g *global[N, B]) Version() string {
	return fmt.Sprintf("%dx%d/steps=%d", g.sh.layers, g.sh.hidden, g.net.opt().step)
}

// Learn trains on the examples the histories in in complete. The example
// of in[i] has as targets the last H buckets of in[i].Y and as input the
// L buckets before them (left-padded when fewer); a series with fewer than
// H+1 buckets is skipped. Besides the window, the features look at most 28
// buckets further back, so histories longer than L+H+28 buckets add
// nothing.
//
// With Replay r, each series adds the examples that completed k buckets
// earlier, for r values of k drawn without repetition from [1,
// ReplayDepth] (fewer when its history holds fewer: the example of k
// needs more than H+k buckets). They are cut from the same history, so
// their look-back before the window is shorter by k buckets.
//
// The examples form one batch: StepsPerClose times, Learn shuffles them
// with the model's seeded generator and splits them into max(ceil(n /
// MiniBatch), min(MinBatches, n)) minibatches of near-equal size, one
// Adam step each, at the rate of the step's number (see DecaySteps). A
// step whose loss or gradient is not finite, or that would make a
// parameter non-finite, is skipped and counted; it changes neither the
// weights nor the optimizer state. Non-finite quantities are not
// repaired: they make the steps of their minibatches skip.
//
// LearnStats.Examples counts the newest examples only, one per series,
// as does the total that weighs a model in mixing (see Mixable), so
// replay does not change how partitions weigh each other.
func (g *global[N, B]) Learn(in []Input) LearnStats {
	h := g.sh.horizon
	g.order = g.order[:0]
	fresh := 0
	for i := range in {
		if len(in[i].Y) > h {
			g.order = append(g.order, example{idx: int32(i)})
			fresh++
		}
	}
	if fresh == 0 {
		return LearnStats{}
	}
	if g.cfg.Replay > 0 {
		for _, e := range g.order[:fresh] {
			g.order = appendReplay(g.order, g.rng, e.idx, min(ReplayDepth, len(in[e.idx].Y)-h-1), g.cfg.Replay)
		}
	}
	n := len(g.order)
	nb := max((n+g.cfg.MiniBatch-1)/g.cfg.MiniBatch, min(g.cfg.MinBatches, n))
	largest := (n + nb - 1) / nb
	var none B
	if g.train == none || g.train.rowData().cap < largest {
		g.train = g.net.newBufs(largest, true)
	}
	st := LearnStats{Examples: fresh}
	var lossSum float64
	for range g.cfg.StepsPerClose {
		shuffle(g.rng, g.order)
		lo := 0
		for b := range nb {
			hi := lo + (n-lo)/(nb-b)
			g.loadExamples(in, g.order[lo:hi])
			lo = hi
			g.hp.lr = g.cfg.rate(int64(g.net.opt().step) + 1)
			if loss, ok := trainStep(g.net, g.train, &g.hp); ok {
				g.averageStep()
				st.Steps++
				lossSum += loss
			} else {
				st.Skipped++
			}
		}
	}
	if st.Steps > 0 {
		st.Loss = lossSum / float64(st.Steps)
	}
	g.examples += int64(fresh)
	g.steps += int64(st.Steps)
	g.skipped += int64(st.Skipped)
	return st
}

// example is a training example of Learn: the window of in[idx] whose
// targets end back buckets before its history does.
type example struct{ idx, back int32 }

// appendReplay appends to dst up to r replayed examples of series idx,
// with distinct offsets drawn by rng from [1, depth], and returns dst.
// It draws nothing when depth < 1.
func appendReplay(dst []example, rng *rand.PCG, idx int32, depth, r int) []example {
	if depth < 1 {
		return dst
	}
	var ks [ReplayDepth]int32
	for j := range depth {
		ks[j] = int32(j + 1)
	}
	// A partial Fisher-Yates shuffle: the first min(r, depth) slots end up
	// a uniform sample without repetition.
	for j := range min(r, depth) {
		m := j + int((rng.Uint64()>>32)*uint64(depth-j)>>32)
		ks[j], ks[m] = ks[m], ks[j]
		dst = append(dst, example{idx: idx, back: ks[j]})
	}
	return dst
}

// averageStep folds the weights of the step just taken, the t-th, into
// the forecasting average with weight 1 - min(d, (1+t)/(10+t)) for decay
// d (see LearnerConfig.Average).
func (g *global[N, B]) averageStep() {
	var none N
	if g.avg == none {
		return
	}
	t := float64(g.net.opt().step)
	g.avg.opt().average(g.net.opt(), float32(1-min(g.cfg.Average, (1+t)/(10+t))))
	g.avgPacked = false
}

// forecastNet returns the network forecasts run: the averaged weights,
// their packed copies refreshed when stale, or the trained weights when
// averaging is off.
func (g *global[N, B]) forecastNet() N {
	var none N
	if g.avg == none {
		return g.net
	}
	if !g.avgPacked {
		g.avg.pack()
		g.avgPacked = true
	}
	return g.avg
}

// loadExamples fills the training buffers with the examples ex of in.
func (g *global[N, B]) loadExamples(in []Input, ex []example) {
	bf, h := g.train, g.sh.horizon
	bf.setRows(len(ex))
	rb := bf.rowData()
	for r, e := range ex {
		s := &in[e.idx]
		end := len(s.Y) - int(e.back) - h
		x, ld, row, nrows := bf.featureDst(r)
		norm, pad := buildFeatures(&g.feat, s, end, x, ld, row, nrows, 0, nil, false)
		scale := norm.scale
		rb.scale[r], rb.pad[r] = scale, int32(pad)
		tgt := rb.tgt[r*h : (r+1)*h]
		for j, y := range s.Y[end : end+h] {
			tgt[j] = float32(y / scale)
		}
	}
	rb.setMaxPad()
}

// ForecastBatch writes the forecast of in[i] into dst[i], whose Mean and Q
// must be sized for the model's Config (see NewForecast); it sets
// dst[i].Levels to the model's levels. The input window is the last L
// buckets of in[i].Y, left-padded when fewer. A series with an empty Y
// gets an all-zero forecast. Non-finite quantities, prices or promotion
// shares are read as zero, so every forecast satisfies Forecast.Check.
// Series are processed in chunks of up to 256.
//
// With a recurrent network, a series with a Key carries its state from
// one forecast to the next (see LearnerConfig.Refresh): when its window
// ends one bucket after its previous forecast's, that state takes one
// step with the new bucket, relative to the scale and mean price of the
// last full run, instead of the whole window running again. The window
// runs in full for a series' first forecast, after a skipped or repeated
// bucket, and every Refresh buckets, so that the state follows the
// trained weights and a new scale.
//
// It panics if len(dst) != len(in) or a dst[i] has the wrong size.
func (g *global[N, B]) ForecastBatch(dst []*Forecast, in []Input) {
	if len(dst) != len(in) {
		panic(fmt.Sprintf("model: %s ForecastBatch: %d forecasts for %d inputs", g.spec.name, len(dst), len(in)))
	}
	h, nq := g.sh.horizon, g.sh.levels
	for i, f := range dst {
		if len(f.Mean) != h || len(f.Q) != h*nq {
			panic(fmt.Sprintf("model: %s ForecastBatch: forecast %d has %d means and %d quantiles, want %d and %d",
				g.spec.name, i, len(f.Mean), len(f.Q), h, h*nq))
		}
	}
	for i := 0; i < len(in); {
		g.rows, g.stepRows, g.slots = g.rows[:0], g.stepRows[:0], g.slots[:0]
		for ; i < len(in) && len(g.rows)+len(g.stepRows) < forecastChunk; i++ {
			s := &in[i]
			if len(s.Y) == 0 {
				clear(dst[i].Mean)
				clear(dst[i].Q)
				dst[i].Levels = g.levels
				continue
			}
			if g.carry != nil {
				if slot := g.carry.stepping(s.Key, s.Start+int64(len(s.Y))-1); slot >= 0 {
					g.stepRows, g.slots = append(g.stepRows, int32(i)), append(g.slots, slot)
					continue
				}
			}
			g.rows = append(g.rows, int32(i))
		}
		// Steps first: the full runs may take new slots, and taking a
		// slot may prune stale ones, which must not be one still to step.
		more := i < len(in)
		if len(g.stepRows) > 0 {
			g.forecastSteps(dst, in, more)
		}
		if len(g.rows) > 0 {
			g.forecastFull(dst, in, more)
		}
	}
}

// forecastBufs returns bf when it holds rows rows, or new forecasting
// buffers (of one step with step) for rows, or a full chunk when more are
// to come.
func (g *global[N, B]) forecastBufs(bf B, rows int, more, step bool) B {
	var none B
	if bf != none && bf.rowData().cap >= rows {
		return bf
	}
	if more {
		rows = forecastChunk
	}
	if step {
		return any(g.net).(recurrent[B]).newStepBufs(rows)
	}
	return g.net.newBufs(rows, false)
}

// forecastFull forecasts the series in[g.rows] from their whole windows
// and, for those with a Key, keeps the final state.
func (g *global[N, B]) forecastFull(dst []*Forecast, in []Input, more bool) {
	g.fc = g.forecastBufs(g.fc, len(g.rows), more, false)
	bf := g.fc
	bf.setRows(len(g.rows))
	rb := bf.rowData()
	for r, idx := range g.rows {
		s := &in[idx]
		x, ld, row, rows := bf.featureDst(r)
		norm, pad := buildFeatures(&g.feat, s, len(s.Y), x, ld, row, rows, 0, nil, true)
		rb.scale[r], rb.pmean[r], rb.pad[r] = norm.scale, norm.pmean, int32(pad)
	}
	rb.setMaxPad()
	net := g.forecastNet()
	net.forward(bf)
	o := g.sh.outputs()
	for r, idx := range g.rows {
		s := &in[idx]
		writeForecast(dst[idx], rb.out[r*o:(r+1)*o], rb.scale[r], g.levels)
		if g.carry == nil || s.Key == 0 {
			continue
		}
		slot, fresh := g.carry.slot(s.Key)
		any(net).(recurrent[B]).saveState(bf, r, g.carry.state(slot))
		g.carry.ranFull(slot, s.Start+int64(len(s.Y))-1, featNorm{rb.scale[r], rb.pmean[r]}, fresh)
	}
}

// forecastSteps forecasts the series in[g.stepRows] by one step of their
// carried states g.slots with their last bucket.
func (g *global[N, B]) forecastSteps(dst []*Forecast, in []Input, more bool) {
	g.fs = g.forecastBufs(g.fs, len(g.stepRows), more, true)
	bf := g.fs
	bf.setRows(len(g.stepRows))
	rb := bf.rowData()
	net := any(g.forecastNet()).(recurrent[B])
	for r, idx := range g.stepRows {
		s := &in[idx]
		slot := g.slots[r]
		norm := g.carry.slots[slot].norm
		x, ld, row, rows := bf.featureDst(r)
		buildFeatures(&g.feat, s, len(s.Y), x, ld, row, rows, g.sh.window-1, &norm, true)
		rb.scale[r], rb.pad[r] = norm.scale, 0
		net.loadState(bf, r, g.carry.state(slot))
	}
	rb.setMaxPad()
	net.forwardFrom(bf)
	o := g.sh.outputs()
	for r, idx := range g.stepRows {
		s := &in[idx]
		slot := g.slots[r]
		writeForecast(dst[idx], rb.out[r*o:(r+1)*o], rb.scale[r], g.levels)
		net.saveState(bf, r, g.carry.state(slot))
		g.carry.stepped(slot, s.Start+int64(len(s.Y))-1)
	}
}

// forget drops the carried state of the series with key, if any.
func (g *global[N, B]) forget(key uint64) {
	if g.carry != nil {
		g.carry.forget(key)
	}
}

// shuffle permutes a with the Fisher-Yates shuffle driven by rng. It is
// spelled out, rather than using rand.Shuffle, so that checkpointed runs
// stay reproducible whatever the standard library does.
func shuffle[E any](rng *rand.PCG, a []E) {
	for i := len(a) - 1; i > 0; i-- {
		j := int((rng.Uint64() >> 32) * uint64(i+1) >> 32)
		a[i], a[j] = a[j], a[i]
	}
}
