package model

import (
	"math"
	"math/rand/v2"

	"github.com/trendstream/trendstream/model/internal/kern"
)

// This file holds what the networks of the global learners share: the
// kernels, the parameter vector with its AdamW update and weight
// averaging, the per-row buffers of a pass and the output head with its
// loss. Everything is generic over the element type so that the float64
// gradient checks run the very code that trains in float32; only the
// float32 instantiation is used in production.

// float is the element type of a network.
type float interface{ float32 | float64 }

// kernels dispatches to kern's float32 or float64 functions.
type kernels[T float] struct {
	gemmNN, gemmNT, gemmTN func(m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, acc bool)
	gemmNNP                func(m, n, k int, a []T, lda int, bp []T, c []T, ldc int, acc bool)
	gemmTNSum              func(m, n, k, segs int, a []T, lda, sa int, b []T, ldb, sb int, c []T, ldc int, acc bool)
	packB                  func(dst, b []T, k, n, ldb int, trans bool)
	lstmFwd                func(gates, z, cPrev, c, tanhC, h []T, ldh int, h2 []T, ldh2 int, b, hid int)
	lstmBwd                func(gates, cPrev, tanhC, dh, dc, dz, dcPrev []T, b, hid int)
	gruFwd                 func(gates, z, hPrev []T, ldp int, h []T, ldh int, h2 []T, ldh2 int, b, hid int)
	gruBwd                 func(gates, hPrev []T, ldp int, dh, dc, dz, dcPrev []T, b, hid int)
	softmax                func(x []T)
	gelu                   func(f, t, u []T)
	geluBack               func(df, u, t []T)
	layerNorm              func(x, g, b, y, xh []T, eps T) T
	layerNormBack          func(dy, g, xh, dg, db, dx []T, r T)
	adam                   func(params, grads, m, v []T, lr, beta1, beta2, eps, wd, bc1, bc2 T)
	sqNorm                 func(x []T) float64
	scale                  func(alpha T, x []T)

	// packedFwd selects packed weights for the forward products. The
	// float64 instantiation reads the weights in place instead, so that
	// the gradient checks may perturb the parameters without repacking
	// (the results are the same).
	packedFwd bool
}

var (
	kernels32 = kernels[float32]{
		gemmNN: kern.GemmNN32, gemmNT: kern.GemmNT32, gemmTN: kern.GemmTN32,
		gemmNNP: kern.GemmNNPacked32, packB: kern.PackB32, packedFwd: true, gemmTNSum: kern.GemmTNSum32,
		lstmFwd: kern.LSTMForwardTo32, lstmBwd: kern.LSTMBackward32,
		gruFwd: kern.GRUForwardTo32, gruBwd: kern.GRUBackward32,
		softmax: kern.Softmax32, gelu: kern.GELU32, geluBack: kern.GELUBack32,
		layerNorm: kern.LayerNorm32, layerNormBack: kern.LayerNormBack32,
		adam: kern.Adam32, sqNorm: kern.SqNorm32, scale: kern.Scale32,
	}
	kernels64 = kernels[float64]{
		gemmNN: kern.GemmNN64, gemmNT: kern.GemmNT64, gemmTN: kern.GemmTN64,
		gemmNNP: kern.GemmNNPacked64, packB: kern.PackB64, gemmTNSum: kern.GemmTNSum64,
		lstmFwd: kern.LSTMForwardTo64, lstmBwd: kern.LSTMBackward64,
		gruFwd: kern.GRUForwardTo64, gruBwd: kern.GRUBackward64,
		softmax: kern.Softmax64, gelu: kern.GELU64, geluBack: kern.GELUBack64,
		layerNorm: kern.LayerNorm64, layerNormBack: kern.LayerNormBack64,
		adam: kern.Adam64, sqNorm: kern.SqNorm64, scale: kern.Scale64,
	}
)

func kernelsFor[T float]() *kernels[T] {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return any(&kernels32).(*kernels[T])
	}
	return any(&kernels64).(*kernels[T])
}

// shape is the architecture of a network.
type shape struct {
	layers   int // stacked layers
	hidden   int // hidden units (the model width) per layer
	heads    int // attention heads (Transformer only)
	window   int // input steps L
	horizon  int // forecast steps H
	levels   int // quantile levels
	features int // input features per step
}

// inputs returns the input width of recurrent layer l.
func (s shape) inputs(l int) int {
	if l == 0 {
		return s.features
	}
	return s.hidden
}

// outputs returns the width of the head: per step a mean and one value per
// quantile level.
func (s shape) outputs() int { return s.horizon * (1 + s.levels) }

// hyper are the optimiser settings of one update.
type hyper struct {
	lr, beta1, beta2, eps, wd, clip float64
}

// matSpan is a rows×cols row-major matrix in a parameter vector, starting
// at off. Its last row is a bias: weight decay applies to the other rows
// only.
type matSpan struct{ off, rows, cols int }

// paramLayout lays out the matrices of a network in one parameter vector.
type paramLayout struct {
	n    int
	mats []matSpan
}

// add appends a rows×cols matrix and returns it.
func (pl *paramLayout) add(rows, cols int) matSpan {
	s := matSpan{pl.n, rows, cols}
	pl.mats = append(pl.mats, s)
	pl.n += rows * cols
	return s
}

// optim holds the parameters of a network in one flat slice, laid out by
// a paramLayout, with their gradient and AdamW state, and applies the
// AdamW update.
type optim[T float] struct {
	k    *kernels[T]
	mats []matSpan

	params, grads, m, v []T
	saved               []T // params, m, v before the last update, for rollback

	step int64 // Adam steps taken
}

// newOptim returns zero parameters laid out by pl. Without train it holds
// the parameters only: no gradients, optimizer state or rollback copy.
func newOptim[T float](pl paramLayout, train bool) optim[T] {
	o := optim[T]{k: kernelsFor[T](), mats: pl.mats, params: make([]T, pl.n)}
	if train {
		o.grads, o.m, o.v, o.saved = make([]T, pl.n), make([]T, pl.n), make([]T, pl.n), make([]T, 3*pl.n)
	}
	return o
}

// opt returns o; every network embeds an optim, and the learners reach it
// through this method.
func (o *optim[T]) opt() *optim[T] { return o }

// of returns the matrix s in p, which is params or grads.
func (o *optim[T]) of(p []T, s matSpan) []T {
	n := s.rows * s.cols
	return p[s.off : s.off+n : s.off+n]
}

// initUniform draws every weight of s uniform in ±a from rng and returns
// its bias row, for the caller to set.
func (o *optim[T]) initUniform(rng *rand.PCG, s matSpan, a float64) []T {
	w := o.of(o.params, s)
	for i := range w[:(s.rows-1)*s.cols] {
		w[i] = T(uniform(rng, a))
	}
	return w[(s.rows-1)*s.cols:]
}

// resetOptimizer clears the Adam moments and step count.
func (o *optim[T]) resetOptimizer() {
	clear(o.m)
	clear(o.v)
	o.step = 0
}

// average moves o's parameters towards src's by the weight w in (0, 1]:
// params += w·(src.params − params).
func (o *optim[T]) average(src *optim[T], w T) {
	for i, p := range src.params {
		o.params[i] += w * (p - o.params[i])
	}
}

// update applies one AdamW step with global-norm gradient clipping. It
// returns false, leaving parameters and optimiser state untouched, when
// the gradient is not finite or the step would make any parameter or
// moment non-finite. The caller refreshes packed copies of the weights.
func (o *optim[T]) update(hp *hyper) bool {
	k := o.k
	sq := k.sqNorm(o.grads)
	if !finite(sq) {
		return false
	}
	if norm := math.Sqrt(sq); norm > hp.clip {
		k.scale(T(hp.clip/norm), o.grads)
	}
	p := len(o.params)
	copy(o.saved[:p], o.params)
	copy(o.saved[p:2*p], o.m)
	copy(o.saved[2*p:], o.v)
	t := float64(o.step + 1)
	bc1, bc2 := T(1-math.Pow(hp.beta1, t)), T(1-math.Pow(hp.beta2, t))
	lr, b1, b2, eps, wd := T(hp.lr), T(hp.beta1), T(hp.beta2), T(hp.eps), T(hp.wd)
	for _, s := range o.mats {
		w, b := s.off+(s.rows-1)*s.cols, s.off+s.rows*s.cols
		k.adam(o.params[s.off:w], o.grads[s.off:w], o.m[s.off:w], o.v[s.off:w], lr, b1, b2, eps, wd, bc1, bc2)
		k.adam(o.params[w:b], o.grads[w:b], o.m[w:b], o.v[w:b], lr, b1, b2, eps, 0, bc1, bc2)
	}
	if !finite(k.sqNorm(o.params)) || !finite(k.sqNorm(o.m)) || !finite(k.sqNorm(o.v)) {
		copy(o.params, o.saved[:p])
		copy(o.m, o.saved[p:2*p])
		copy(o.v, o.saved[2*p:])
		return false
	}
	o.step++
	return true
}

// uniform returns a uniform value in [-a, a) from rng.
func uniform(rng *rand.PCG, a float64) float64 {
	u := float64(rng.Uint64()>>11) * 0x1p-53
	return (2*u - 1) * a
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// seq is a sequence of per-step matrices in one slice: step t is
// data[t*stride:][:size]. A zero stride makes every step the same slice,
// for state that is only carried forward (forecasting).
type seq[T float] struct {
	data         []T
	stride, size int
}

func (s seq[T]) at(t int) []T {
	o := t * s.stride
	return s.data[o : o+s.size : o+s.size]
}

// setCol sets column col of every row of the matrix a (row length ld) to
// one: the constant input that multiplies a bias row.
func setCol[T float](a []T, ld, col int) {
	for i := col; i < len(a); i += ld {
		a[i] = 1
	}
}

// rowBufs is the per-row part of the buffers of one pass, the same for
// every network: the rows' window norms and padding, the training
// targets, and the head's input and output. Capacity is fixed at
// construction; rows is the batch size of the current pass.
type rowBufs[T float] struct {
	cap  int // rows the buffers hold
	rows int // rows of the current pass

	head   []T       // rows×(hidden+1): [h | 1], the head input
	out    []T       // rows×outputs head pre-activations; the head gradient after lossGrad
	tgt    []T       // training: rows×H scaled targets
	scale  []float64 // per row scale s
	pmean  []float64 // forecasting: per row mean price of the window
	pad    []int32   // per row number of padded leading steps
	maxPad int
}

func newRowBufs[T float](sh shape, rows int, train bool) rowBufs[T] {
	rb := rowBufs[T]{
		cap:   rows,
		head:  make([]T, rows*(sh.hidden+1)),
		out:   make([]T, rows*sh.outputs()),
		scale: make([]float64, rows),
		pmean: make([]float64, rows),
		pad:   make([]int32, rows),
	}
	setCol(rb.head, sh.hidden+1, sh.hidden)
	if train {
		rb.tgt = make([]T, rows*sh.horizon)
	}
	return rb
}

// rowData returns rb; every pass's buffers embed a rowBufs, and the
// learners reach it through this method.
func (rb *rowBufs[T]) rowData() *rowBufs[T] { return rb }

// setMaxPad records the largest padding of the current rows.
func (rb *rowBufs[T]) setMaxPad() {
	rb.maxPad = 0
	for _, p := range rb.pad[:rb.rows] {
		rb.maxPad = max(rb.maxPad, int(p))
	}
}

// outHead is the output layer of every network: a linear map Wo,
// (hidden+1)×outputs, of the final representation [h | 1] to, for each of
// the H steps, a mean pre-activation a (output column h*(1+levels)) and
// one pre-activation b_j per quantile level (the next levels columns).
// The forecast is mean = s·softplus(a), lowest quantile s·b_0 and each
// next quantile the previous plus s·softplus(b_j), all clamped at zero
// (see writeForecast).
type outHead[T float] struct {
	k      *kernels[T]
	sh     shape
	taus   []float64 // quantile levels
	gq, sg []float64 // per-level scratch of the loss
}

func newOutHead[T float](sh shape, taus []float64) outHead[T] {
	return outHead[T]{k: kernelsFor[T](), sh: sh, taus: taus, gq: make([]float64, sh.levels), sg: make([]float64, sh.levels)}
}

// initBias sets the head biases: mean and lowest-quantile biases 0, the
// other quantile biases -1 (so the initial quantiles are spread by
// softplus(-1) ≈ 0.31 scaled units).
func (hd *outHead[T]) initBias(b []T) {
	nq := hd.sh.levels
	for j := range b {
		b[j] = 0
		if j%(1+nq) > 1 {
			b[j] = -1
		}
	}
}

// forward computes the head pre-activations rb.out = [h | 1]·Wo.
func (hd *outHead[T]) forward(rb *rowBufs[T], wo []T) {
	o, hid := hd.sh.outputs(), hd.sh.hidden
	hd.k.gemmNN(rb.rows, o, hid+1, rb.head, hid+1, wo, o, rb.out, o, false)
}

// backward takes the head gradient in rb.out, writes the gradient of Wo
// to dwo and that of h to dh (rows×hidden, row stride ldh).
func (hd *outHead[T]) backward(rb *rowBufs[T], wo, dwo, dh []T, ldh int) {
	k, o, hid, B := hd.k, hd.sh.outputs(), hd.sh.hidden, rb.rows
	k.gemmTN(hid+1, o, B, rb.head, hid+1, rb.out, o, dwo, o, false)
	k.gemmNT(B, hid, o, rb.out, o, wo, o, dh, ldh, false)
}

// softplusSigmoid returns log(1+eˣ) and its derivative 1/(1+e⁻ˣ).
func softplusSigmoid(x float64) (sp, sg float64) {
	e := math.Exp(-math.Abs(x))
	sp = max(x, 0) + math.Log1p(e)
	if x >= 0 {
		sg = 1 / (1 + e)
	} else {
		sg = e / (1 + e)
	}
	return sp, sg
}

// lossGrad returns the loss of the batch and replaces rb.out by its
// gradient. Per example the loss is, averaged over the H steps, the
// squared error of the mean softplus(a) plus the pinball loss of each
// quantile, all in scaled units; quantile j is b_0 plus the sum of
// softplus(b_i) for 0 < i ≤ j (the unclamped quantile: forecasts clamp it
// at zero). At a tie (target equal to a quantile) the pinball
// subgradient 1-τ is used. The batch loss is the mean of the examples'
// losses weighted by w_r = s_r / mean(s): in scaled units a series
// selling 20 a day would otherwise weigh as much as one selling one a
// week, and the volume (and the weight of accuracy metrics such as
// WRMSSE) sits with the former.
func (hd *outHead[T]) lossGrad(rb *rowBufs[T]) float64 {
	B, H, nq := rb.rows, hd.sh.horizon, hd.sh.levels
	o := hd.sh.outputs()
	var ssum float64
	for _, s := range rb.scale[:B] {
		ssum += s
	}
	gq, sg := hd.gq, hd.sg
	var loss float64
	for r := range B {
		w := rb.scale[r] * float64(B) / ssum
		inv := w / float64(B*H)
		var rl float64
		for h := range H {
			out := rb.out[r*o+h*(1+nq) : r*o+(h+1)*(1+nq)]
			y := float64(rb.tgt[r*H+h])
			sp, s := softplusSigmoid(float64(out[0]))
			d := sp - y
			rl += d * d
			out[0] = T(2 * d * s * inv)
			cum := 0.0
			for j, tau := range hd.taus {
				sp, s := float64(out[1]), 1.0
				if j > 0 {
					sp, s = softplusSigmoid(float64(out[1+j]))
				}
				sg[j] = s
				cum += sp
				if u := y - cum; u > 0 {
					rl += tau * u
					gq[j] = -tau
				} else {
					rl += (tau - 1) * u
					gq[j] = 1 - tau
				}
			}
			acc := 0.0
			for j := nq - 1; j >= 0; j-- {
				acc += gq[j]
				out[1+j] = T(acc * sg[j] * inv)
			}
		}
		loss += w * rl
	}
	return loss / float64(B*H)
}

// writeForecast turns the head pre-activations out of one row into a
// forecast with scale s and the given quantile levels. Values that are
// not finite (possible only with absurd scales) are replaced by the next
// lower valid value, or zero.
func writeForecast(f *Forecast, out []float32, s float64, levels []float64) {
	nq := len(levels)
	f.Levels = levels
	for h := range f.Mean {
		oh := out[h*(1+nq) : (h+1)*(1+nq)]
		sp, _ := softplusSigmoid(float64(oh[0]))
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
				sp, _ := softplusSigmoid(float64(oh[1+j]))
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
