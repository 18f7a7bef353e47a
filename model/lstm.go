package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// NameLSTM identifies the LSTM in forecast records and reports.
const NameLSTM = "lstm"

// LSTM is a global online forecaster: one network shared by all series of
// a partition, trained with Adam on the examples each bucket close
// completes and forecasting a mean and quantiles for H steps.
//
// # Inputs
//
// Each of the L input steps of a series (bucket index in.Start+i) has
// these features, in this order:
//
//  0. the quantity scaled by the series' scale, y/s, where s = 1 + the
//     mean of the window's real (unpadded) quantities, negative means
//     counting as 0 (DeepAR scaling; outputs are multiplied back by s);
//  1. the real-step mask: 1 for a real step, 0 for left padding;
//  2. the price relative to the mean non-zero price of the window's real
//     steps, capped at 10; 0 when the price is unknown (zero, missing or
//     not finite);
//  3. the promotion share, clamped to [0, 1] (0 when missing);
//  4. the zero-sale indicator: 1 when y ≤ 0;
//  5. the buckets since the last sale (y > 0), min(n, 28)/28: 0 on a
//     sale, 1/28 the bucket after, …; sales are looked for up to 28
//     buckets before the window, and a series that has not sold since Y
//     began counts from the bucket before Y[0];
//  6. …: the Calendar's covariates of the bucket, or, when the Calendar
//     is nil, sin and cos of 2π·k/P with k = bucket mod in.Period and
//     P = in.Period (1 when not positive).
//
// So there are 6 + Calendar.Width() features, or 8 without a Calendar.
// Padded steps have all features zero.
//
// # Padding
//
// A window longer than the history is left-padded. After each padded step
// the LSTM state of that series is reset to zero, so the state entering
// its first real step is the initial state: a padded series gets exactly
// the forecast it would get from the same model run over its real steps
// only, and padded steps neither influence outputs nor receive gradients.
//
// # Network
//
// Layers stacked LSTM layers (gates [i | f | g | o], forget-gate bias
// initialised to 1) run over the L steps; the last layer's final hidden
// state feeds a linear head with, for each of the H steps, a mean
// pre-activation a and one pre-activation b_j per quantile level. The
// forecast is mean = s·softplus(a), lowest quantile s·b_0 and each next
// quantile the previous plus s·softplus(b_j), all clamped at zero, so
// values are non-negative and quantiles never cross. The lowest quantile
// is linear so that it can reach exactly zero: on intermittent demand the
// 10% quantile is usually no sales at all. The training loss of an example
// is, averaged over the H steps, the squared error of the mean plus the
// pinball loss of every quantile, in scaled units (target y/s); a batch's
// loss is the mean over its examples weighted by s / mean(s), so that
// series with more volume count for more (measured better than equal
// weights on the M5 dev set). Gradients come from full
// backpropagation through time, are clipped to ClipNorm in global norm and
// applied by AdamW. Forecasts run on a moving average of the trained
// weights (see LearnerConfig.Average).
//
// Training and forecasting run in float32 on the AVX2 kernels of
// model/internal/kern, on one goroutine: the LSTM never starts goroutines.
//
// # Memory
//
// At 2x64 (L = 56, 8 features, H = 28, 3 levels: 58,992 parameters) the
// weights, gradients, Adam moments, a rollback copy, the forecasting
// average and packed copies of both take 2.5 MB. Training scratch keeps
// every step of every layer, about 250 KB per minibatch row: 15 MB at
// MiniBatch 64, 100 MB at 413. Forecasting scratch is 1.4 MB. A
// checkpoint is 16 bytes per parameter plus a header: 944,000 bytes. Each
// keyed series' carried state takes 2·layers·hidden float32 (512 bytes at
// the default 2x32) and about 70 bytes of bookkeeping; carried states are
// not checkpointed, so after a restart (or UnmarshalBinary) each series
// runs its window in full once.
//
// # Concurrency
//
// An LSTM is not safe for concurrent use; the partition's goroutine owns
// it. Steady-state Learn and ForecastBatch calls allocate nothing: scratch
// is sized for the largest minibatch (at most MiniBatch rows) and the
// largest forecast chunk (at most 256 rows) seen and kept.
type LSTM struct {
	cfg    LearnerConfig
	levels []float64
	sh     lstmShape
	hp     lstmHyper
	net    *lstmNet[float32] // the trained weights
	// avg holds the weights forecasts use, the moving average of net's
	// (see LearnerConfig.Average); nil when Average is 0, and forecasts use
	// net. avgPacked is false while avg's packed copies lag its params.
	avg       *lstmNet[float32]
	avgPacked bool
	feat      lstmFeaturizer
	rng       *rand.PCG

	train    *lstmBufs[float32] // nil until the first Learn
	fc       *lstmBufs[float32] // nil until the first ForecastBatch
	fs       *lstmBufs[float32] // one-step buffers; nil until the first carried step
	order    []int32            // example order of Learn
	rows     []int32            // series of the current forecast chunk run in full
	stepRows []int32            // series of the current chunk that step their state
	slots    []int32            // carried-state slots of stepRows

	// carry holds the series' carried states; nil when Refresh is 1.
	// stepShape is sh with a one-step window.
	carry     *lstmCarries
	stepShape lstmShape

	// Totals over the model's life (checkpointed).
	examples, steps, skipped int64
}

var (
	_ Learner      = (*LSTM)(nil)
	_ Checkpointer = (*LSTM)(nil)
	_ Carrier      = (*LSTM)(nil)
	_ Versioner    = (*LSTM)(nil)
)

// lstmChunk is the largest number of series forecast in one pass.
const lstmChunk = 256

// lstmInitStream is the PCG stream word of the model's random numbers.
const lstmInitStream = 0x7473_6c73_746d_0001

// NewLSTM returns an LSTM with freshly initialised weights for the
// horizon and quantile levels of mcfg. It returns an error naming the
// field and value of an invalid configuration.
func NewLSTM(cfg LearnerConfig, mcfg Config) (*LSTM, error) {
	if err := mcfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	nf := lstmBaseFeatures + 2
	calW := 0
	if cfg.Calendar != nil {
		calW = cfg.Calendar.Width()
		nf = lstmBaseFeatures + calW
	}
	m := &LSTM{
		cfg:    cfg,
		levels: slices.Clone(mcfg.Levels),
		sh: lstmShape{
			layers: cfg.Layers, hidden: cfg.Hidden, window: cfg.Window,
			horizon: mcfg.Horizon, levels: len(mcfg.Levels), features: nf,
		},
		hp: lstmHyper{
			lr: cfg.LearningRate, beta1: cfg.Beta1, beta2: cfg.Beta2,
			eps: cfg.Eps, wd: cfg.WeightDecay, clip: cfg.ClipNorm,
		},
		feat: lstmFeaturizer{
			window: cfg.Window, features: nf, cal: cfg.Calendar,
			calBuf: make([]float32, calW),
		},
		rng: rand.NewPCG(cfg.Seed, lstmInitStream),
	}
	m.net = newLSTMNet[float32](m.sh, m.levels, true)
	m.net.init(m.rng)
	if cfg.Average > 0 {
		m.avg = newLSTMNet[float32](m.sh, m.levels, false)
		copy(m.avg.params, m.net.params)
	}
	m.stepShape = m.sh
	m.stepShape.window = 1
	if cfg.Refresh > 1 {
		m.carry = newLSTMCarries(cfg.Refresh, m.sh.stateLen())
	}
	return m, nil
}

// Name returns "lstm".
func (*LSTM) Name() string { return NameLSTM }

// Steps returns the number of optimizer steps the model has taken over its
// life, checkpoints included.
func (m *LSTM) Steps() int64 { return m.steps }

// Version describes the architecture and training progress, for the
// model_version of forecast records: "2x64/steps=1234" is a 2-layer,
// 64-unit network after 1234 optimizer steps.
func (m *LSTM) Version() string {
	return fmt.Sprintf("%dx%d/steps=%d", m.sh.layers, m.sh.hidden, m.net.step)
}

// Learn trains on the examples the histories in in complete. The example
// of in[i] has as targets the last H buckets of in[i].Y and as input the
// L buckets before them (left-padded when fewer); a series with fewer than
// H+1 buckets is skipped. Besides the window, the features look at most 28
// buckets further back, so histories longer than L+H+28 buckets add
// nothing.
//
// The examples form one batch: StepsPerClose times, Learn shuffles them
// with the model's seeded generator and splits them into
// ceil(n/MiniBatch) minibatches of near-equal size, one Adam step each. A
// step whose loss or gradient is not finite, or that would make a
// parameter non-finite, is skipped and counted; it changes neither the
// weights nor the optimizer state. Non-finite quantities are not
// repaired: they make the steps of their minibatches skip.
func (m *LSTM) Learn(in []Input) LearnStats {
	h := m.sh.horizon
	m.order = m.order[:0]
	for i := range in {
		if len(in[i].Y) > h {
			m.order = append(m.order, int32(i))
		}
	}
	n := len(m.order)
	if n == 0 {
		return LearnStats{}
	}
	nb := (n + m.cfg.MiniBatch - 1) / m.cfg.MiniBatch
	largest := (n + nb - 1) / nb
	if m.train == nil || m.train.cap < largest {
		m.train = newLSTMBufs[float32](m.sh, largest, true)
	}
	bf := m.train
	st := LearnStats{Examples: n}
	var lossSum float64
	for range m.cfg.StepsPerClose {
		lstmShuffle(m.rng, m.order)
		lo := 0
		for b := range nb {
			hi := lo + (n-lo)/(nb-b)
			m.loadExamples(in, m.order[lo:hi])
			lo = hi
			if loss, ok := m.net.trainStep(bf, &m.hp); ok {
				m.averageStep()
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
	m.examples += int64(n)
	m.steps += int64(st.Steps)
	m.skipped += int64(st.Skipped)
	return st
}

// averageStep folds the weights of the step just taken, the t-th, into
// the forecasting average with weight 1 - min(d, (1+t)/(10+t)) for decay
// d (see LearnerConfig.Average).
func (m *LSTM) averageStep() {
	if m.avg == nil {
		return
	}
	t := float64(m.net.step)
	m.avg.average(m.net, float32(1-min(m.cfg.Average, (1+t)/(10+t))))
	m.avgPacked = false
}

// forecastNet returns the network forecasts run: the averaged weights,
// their packed copies refreshed when stale, or the trained weights when
// averaging is off.
func (m *LSTM) forecastNet() *lstmNet[float32] {
	if m.avg == nil {
		return m.net
	}
	if !m.avgPacked {
		m.avg.transpose()
		m.avgPacked = true
	}
	return m.avg
}

// loadExamples fills the training buffers with the examples of the series
// in[idx] for idx in rows.
func (m *LSTM) loadExamples(in []Input, rows []int32) {
	bf, h := m.train, m.sh.horizon
	bf.setRows(len(rows))
	for r, idx := range rows {
		s := &in[idx]
		end := len(s.Y) - h
		norm, pad := lstmBuild(&m.feat, s, end, bf.xh[0].data, m.sh.rows(0), r, len(rows), 0, nil, false)
		scale := norm.scale
		bf.scale[r], bf.pad[r] = scale, int32(pad)
		tgt := bf.tgt[r*h : (r+1)*h]
		for j, y := range s.Y[end:] {
			tgt[j] = float32(y / scale)
		}
	}
	bf.setMaxPad()
}

// ForecastBatch writes the forecast of in[i] into dst[i], whose Mean and Q
// must be sized for the model's Config (see NewForecast); it sets
// dst[i].Levels to the model's levels. The input window is the last L
// buckets of in[i].Y, left-padded when fewer. A series with an empty Y
// gets an all-zero forecast. Non-finite quantities, prices or promotion
// shares are read as zero, so every forecast satisfies Forecast.Check.
// Series are processed in chunks of up to 256.
//
// A series with a Key carries its LSTM state from one forecast to the
// next (see LearnerConfig.Refresh): when its window ends one bucket after
// its previous forecast's, that state takes one step with the new
// bucket, relative to the scale and mean price of the last full run,
// instead of the whole window running again. The window runs in full for a series' first forecast,
// after a skipped or repeated bucket, and every Refresh buckets, so that
// the state follows the trained weights and a new scale.
//
// It panics if len(dst) != len(in) or a dst[i] has the wrong size.
func (m *LSTM) ForecastBatch(dst []*Forecast, in []Input) {
	if len(dst) != len(in) {
		panic(fmt.Sprintf("model: LSTM.ForecastBatch: %d forecasts for %d inputs", len(dst), len(in)))
	}
	h, nq := m.sh.horizon, m.sh.levels
	for i, f := range dst {
		if len(f.Mean) != h || len(f.Q) != h*nq {
			panic(fmt.Sprintf("model: LSTM.ForecastBatch: forecast %d has %d means and %d quantiles, want %d and %d",
				i, len(f.Mean), len(f.Q), h, h*nq))
		}
	}
	for i := 0; i < len(in); {
		m.rows, m.stepRows, m.slots = m.rows[:0], m.stepRows[:0], m.slots[:0]
		for ; i < len(in) && len(m.rows)+len(m.stepRows) < lstmChunk; i++ {
			s := &in[i]
			if len(s.Y) == 0 {
				clear(dst[i].Mean)
				clear(dst[i].Q)
				dst[i].Levels = m.levels
				continue
			}
			if m.carry != nil {
				if slot := m.carry.stepping(s.Key, s.Start+int64(len(s.Y))-1); slot >= 0 {
					m.stepRows, m.slots = append(m.stepRows, int32(i)), append(m.slots, slot)
					continue
				}
			}
			m.rows = append(m.rows, int32(i))
		}
		// Steps first: the full runs may take new slots, and taking a
		// slot may prune stale ones, which must not be one still to step.
		more := i < len(in)
		if len(m.stepRows) > 0 {
			m.forecastSteps(dst, in, more)
		}
		if len(m.rows) > 0 {
			m.forecastFull(dst, in, more)
		}
	}
}

// lstmForecastBufs returns bf when it holds rows rows, or new forecasting
// buffers of shape sh for rows, or a full chunk when more are to come.
func lstmForecastBufs(bf *lstmBufs[float32], sh lstmShape, rows int, more bool) *lstmBufs[float32] {
	if bf != nil && bf.cap >= rows {
		return bf
	}
	if more {
		rows = lstmChunk
	}
	return newLSTMBufs[float32](sh, rows, false)
}

// forecastFull forecasts the series in[m.rows] from their whole windows
// and, for those with a Key, keeps the final state.
func (m *LSTM) forecastFull(dst []*Forecast, in []Input, more bool) {
	m.fc = lstmForecastBufs(m.fc, m.sh, len(m.rows), more)
	bf := m.fc
	bf.setRows(len(m.rows))
	for r, idx := range m.rows {
		s := &in[idx]
		norm, pad := lstmBuild(&m.feat, s, len(s.Y), bf.x, m.sh.features, r, len(m.rows), 0, nil, true)
		bf.scale[r], bf.pmean[r], bf.pad[r] = norm.scale, norm.pmean, int32(pad)
	}
	bf.setMaxPad()
	m.forecastNet().forward(bf)
	o := m.sh.outputs()
	for r, idx := range m.rows {
		s := &in[idx]
		m.writeForecast(dst[idx], bf.out[r*o:(r+1)*o], bf.scale[r])
		if m.carry == nil || s.Key == 0 {
			continue
		}
		slot, fresh := m.carry.slot(s.Key)
		bf.saveState(r, m.carry.state(slot))
		m.carry.ranFull(slot, s.Start+int64(len(s.Y))-1, lstmNorm{bf.scale[r], bf.pmean[r]}, fresh)
	}
}

// forecastSteps forecasts the series in[m.stepRows] by one step of their
// carried states m.slots with their last bucket.
func (m *LSTM) forecastSteps(dst []*Forecast, in []Input, more bool) {
	m.fs = lstmForecastBufs(m.fs, m.stepShape, len(m.stepRows), more)
	bf := m.fs
	bf.setRows(len(m.stepRows))
	for r, idx := range m.stepRows {
		s := &in[idx]
		slot := m.slots[r]
		norm := m.carry.slots[slot].norm
		lstmBuild(&m.feat, s, len(s.Y), bf.x, m.sh.features, r, len(m.stepRows), m.sh.window-1, &norm, true)
		bf.scale[r], bf.pad[r] = norm.scale, 0
		bf.loadState(r, m.carry.state(slot))
	}
	bf.setMaxPad()
	m.forecastNet().forwardFrom(bf)
	o := m.sh.outputs()
	for r, idx := range m.stepRows {
		s := &in[idx]
		slot := m.slots[r]
		m.writeForecast(dst[idx], bf.out[r*o:(r+1)*o], bf.scale[r])
		bf.saveState(r, m.carry.state(slot))
		m.carry.stepped(slot, s.Start+int64(len(s.Y))-1)
	}
}

// Forget drops the carried state of the series with key, for a caller
// that will not forecast it under that key again (see Input.Key).
func (m *LSTM) Forget(key uint64) {
	if m.carry != nil {
		m.carry.forget(key)
	}
}

// writeForecast turns head pre-activations into a forecast with scale s.
// Values that are not finite (possible only with absurd scales) are
// replaced by the next lower valid value, or zero.
func (m *LSTM) writeForecast(f *Forecast, out []float32, s float64) {
	nq := m.sh.levels
	f.Levels = m.levels
	for h := range f.Mean {
		oh := out[h*(1+nq) : (h+1)*(1+nq)]
		sp, _ := lstmSoftplusSigmoid(float64(oh[0]))
		mean := s * sp
		if !(mean >= 0) || math.IsInf(mean, 0) {
			mean = 0
		}
		f.Mean[h] = mean
		cum, prev := 0.0, 0.0
		q := f.Q[h*nq : (h+1)*nq]
		for j := range q {
			if j == 0 {
				cum = float64(oh[1])
			} else {
				sp, _ := lstmSoftplusSigmoid(float64(oh[1+j]))
				cum += sp
			}
			v := s * cum
			if !(v >= prev) || math.IsInf(v, 0) {
				v = prev
			}
			q[j], prev = v, v
		}
	}
}

// lstmShuffle permutes a with the Fisher-Yates shuffle driven by rng. It
// is spelled out, rather than using rand.Shuffle, so that checkpointed
// runs stay reproducible whatever the standard library does.
func lstmShuffle(rng *rand.PCG, a []int32) {
	for i := len(a) - 1; i > 0; i-- {
		j := int((rng.Uint64() >> 32) * uint64(i+1) >> 32)
		a[i], a[j] = a[j], a[i]
	}
}

// Feature layout.
const (
	lstmBaseFeatures = 6  // features before the calendar covariates
	lstmGapCap       = 28 // cap of the buckets-since-last-sale feature
	lstmPriceCap     = 10 // cap of the relative price
)

// lstmFeaturizer builds the input features of windows (see LSTM).
type lstmFeaturizer struct {
	window, features int
	cal              Calendar
	calBuf           []float32
}

// lstmNorm is what the features of a window are relative to: its scale s
// and the mean of its known prices.
type lstmNorm struct{ scale, pmean float64 }

// lstmBuild writes the features of steps first to L-1 of the window of in
// that ends before Y index end (exclusive) into row r of x and returns the
// window's norm and number of padded steps. The features are relative to
// keep instead when it is not nil (the norm of a carried state's last
// full run). The features of step t go to the first features columns of
// row (t-first)*rows+r of x, whose rows are ld long. With sanitize,
// non-finite quantities read as zero.
func lstmBuild[T lstmFloat](f *lstmFeaturizer, in *Input, end int, x []T, ld, r, rows, first int, keep *lstmNorm, sanitize bool) (norm lstmNorm, pad int) {
	L, nf := f.window, f.features
	start := end - L
	s0 := max(start, 0)
	pad = s0 - start
	if keep != nil {
		norm = *keep
	} else {
		norm = lstmWindowNorm(in, s0, end, sanitize)
	}
	scale, pmean := norm.scale, norm.pmean
	lo := max(s0-lstmGapCap, 0)
	last := lo - 1
	for i := s0 - 1; i >= lo; i-- {
		if lstmQty(in.Y[i], sanitize) > 0 {
			last = i
			break
		}
	}
	period := int64(max(in.Period, 1))
	for t := range L {
		if t < pad {
			if t >= first {
				clear(x[((t-first)*rows+r)*ld:][:nf])
			}
			continue
		}
		i := start + t
		y := lstmQty(in.Y[i], sanitize)
		if t < first {
			if y > 0 {
				last = i
			}
			continue
		}
		row := x[((t-first)*rows+r)*ld:][:nf]
		row[0] = T(y / scale)
		row[1] = 1
		row[2] = T(min(lstmPrice(in, i)/pmean, lstmPriceCap))
		row[3] = 0
		if i < len(in.Promo) {
			if p := in.Promo[i]; p > 0 { // false for NaN
				row[3] = T(min(p, 1))
			}
		}
		if y > 0 {
			last = i
			row[4] = 0
		} else {
			row[4] = 1
		}
		row[5] = T(float64(min(i-last, lstmGapCap)) / lstmGapCap)
		bucket := in.Start + int64(i)
		if f.cal != nil {
			f.cal.Covariates(bucket, f.calBuf)
			for j, c := range f.calBuf {
				row[lstmBaseFeatures+j] = T(c)
			}
			continue
		}
		k := bucket % period
		if k < 0 {
			k += period
		}
		sin, cos := math.Sincos(2 * math.Pi * float64(k) / float64(period))
		row[lstmBaseFeatures], row[lstmBaseFeatures+1] = T(sin), T(cos)
	}
	return norm, pad
}

// lstmWindowNorm returns the norm of the real steps [s0, end) of in.
func lstmWindowNorm(in *Input, s0, end int, sanitize bool) lstmNorm {
	var sum, psum float64
	var pn int
	for i := s0; i < end; i++ {
		sum += lstmQty(in.Y[i], sanitize)
		if p := lstmPrice(in, i); p > 0 {
			psum += p
			pn++
		}
	}
	norm := lstmNorm{scale: 1 + max(sum/float64(end-s0), 0), pmean: 1}
	if pn > 0 {
		norm.pmean = psum / float64(pn)
	}
	return norm
}

// lstmQty returns y, or 0 for a non-finite y when sanitize is set.
func lstmQty(y float64, sanitize bool) float64 {
	if sanitize && !lstmFinite(y) {
		return 0
	}
	return y
}

// lstmPrice returns the price of bucket i of in when known (positive and
// finite), 0 otherwise.
func lstmPrice(in *Input, i int) float64 {
	if i >= len(in.Price) {
		return 0
	}
	p := float64(in.Price[i])
	if !(p > 0) || math.IsInf(p, 0) {
		return 0
	}
	return p
}
