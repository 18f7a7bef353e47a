package model

import (
	"math"
	"math/rand/v2"

	"github.com/trendstream/trendstream/model/internal/kern"
)

// This file holds the network behind LSTM: stacked LSTM layers with a
// direct multi-horizon head, forward, backward through time, loss and the
// AdamW update. It is generic over the element type so that the float64
// gradient check in lstm_test.go runs the very code that trains in
// float32; only the float32 instantiation is used in production.

// lstmFloat is the element type of the network.
type lstmFloat interface{ float32 | float64 }

// lstmKernels dispatches to kern's float32 or float64 functions.
type lstmKernels[T lstmFloat] struct {
	gemmNN, gemmNT, gemmTN func(m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int, acc bool)
	gemmNNP                func(m, n, k int, a []T, lda int, bp []T, c []T, ldc int, acc bool)
	gemmTNSum              func(m, n, k, segs int, a []T, lda, sa int, b []T, ldb, sb int, c []T, ldc int, acc bool)
	packB                  func(dst, b []T, k, n, ldb int, trans bool)
	cellFwd                func(gates, z, cPrev, c, tanhC, h []T, ldh int, h2 []T, ldh2 int, b, hid int)
	cellBwd                func(gates, cPrev, tanhC, dh, dc, dz, dcPrev []T, b, hid int)
	adam                   func(params, grads, m, v []T, lr, beta1, beta2, eps, wd, bc1, bc2 T)
	sqNorm                 func(x []T) float64
	scale                  func(alpha T, x []T)
	addBias                func(c, bias []T, m, n, ldc int)
	sumRows                func(dst, a []T, m, n, lda int, acc bool)

	// packedFwd selects the packed W_l (wp) for the forward gate product.
	// The float64 instantiation reads W_l in place instead, so that the
	// gradient check may perturb the parameters without repacking (the
	// results are the same).
	packedFwd bool
}

var (
	lstmKernels32 = lstmKernels[float32]{
		gemmNN: kern.GemmNN32, gemmNT: kern.GemmNT32, gemmTN: kern.GemmTN32,
		gemmNNP: kern.GemmNNPacked32, packB: kern.PackB32, packedFwd: true, gemmTNSum: kern.GemmTNSum32,
		cellFwd: kern.LSTMForwardTo32, cellBwd: kern.LSTMBackward32,
		adam: kern.Adam32, sqNorm: kern.SqNorm32, scale: kern.Scale32,
		addBias: kern.AddBias32, sumRows: kern.SumRows32,
	}
	lstmKernels64 = lstmKernels[float64]{
		gemmNN: kern.GemmNN64, gemmNT: kern.GemmNT64, gemmTN: kern.GemmTN64,
		gemmNNP: kern.GemmNNPacked64, packB: kern.PackB64, gemmTNSum: kern.GemmTNSum64,
		cellFwd: kern.LSTMForwardTo64, cellBwd: kern.LSTMBackward64,
		adam: kern.Adam64, sqNorm: kern.SqNorm64, scale: kern.Scale64,
		addBias: kern.AddBias64, sumRows: kern.SumRows64,
	}
)

func lstmKernelsFor[T lstmFloat]() *lstmKernels[T] {
	var zero T
	if _, ok := any(zero).(float32); ok {
		return any(&lstmKernels32).(*lstmKernels[T])
	}
	return any(&lstmKernels64).(*lstmKernels[T])
}

// lstmShape is the architecture of a network.
type lstmShape struct {
	layers   int // stacked LSTM layers
	hidden   int // hidden units per layer
	window   int // input steps L
	horizon  int // forecast steps H
	levels   int // quantile levels
	features int // input features per step
}

// inputs returns the input width of layer l.
func (s lstmShape) inputs(l int) int {
	if l == 0 {
		return s.features
	}
	return s.hidden
}

// outputs returns the width of the head: per step a mean and one value per
// quantile level.
func (s lstmShape) outputs() int { return s.horizon * (1 + s.levels) }

// rows returns the rows of layer l's weight matrix: in_l inputs, hidden
// recurrent inputs and the bias.
func (s lstmShape) rows(l int) int { return s.inputs(l) + s.hidden + 1 }

// numParams returns the number of parameters.
func (s lstmShape) numParams() int {
	n := (s.hidden + 1) * s.outputs()
	for l := range s.layers {
		n += s.rows(l) * 4 * s.hidden
	}
	return n
}

// lstmHyper are the optimiser settings of one update.
type lstmHyper struct {
	lr, beta1, beta2, eps, wd, clip float64
}

// lstmNet holds the parameters, gradients and Adam state of the network,
// each in one flat slice holding the matrices W_0 … W_{layers-1}, Wo in
// turn. W_l is (in_l+hidden+1)×4hidden row-major: its rows multiply the
// stacked step input [x_t | h_{t-1} | 1] (in_l layer inputs, hidden
// recurrent inputs, a constant one), so the last row is the gate bias, and
// its columns are the gate blocks [i | f | g | o]. Wo is
// (hidden+1)×outputs and multiplies [h_L | 1]; output column h*(1+levels)
// is the mean pre-activation of step h, the next levels columns its
// quantile pre-activations. Weight decay applies to every row but the
// last (bias) row of each matrix.
type lstmNet[T lstmFloat] struct {
	sh   lstmShape
	taus []float64 // quantile levels
	k    *lstmKernels[T]

	params, grads, m, v []T
	saved               []T // params, m, v before the last update, for rollback

	w, dw [][]T // per layer W_l and its gradient (views into params, grads)
	// Per layer packed copies of the weights (kern.PackB layout),
	// refreshed after each update: wp is W_l for the forward product, whp
	// the recurrent part W_h,lᵀ (4hidden×hidden) and wxp the input part
	// W_x,lᵀ (4hidden×in_l, layers above the first only) for backward.
	wp, whp, wxp [][]T
	wo, dwo      []T

	step int64 // Adam steps taken

	gq, sg []float64 // per-level scratch of the loss
}

// newLSTMNet returns a network of shape sh with zero parameters. Without
// train it holds only what forecasting needs: parameters and the packed
// copies the forward pass reads, no gradients, optimizer state, rollback
// copy or the transposed copies of backward.
func newLSTMNet[T lstmFloat](sh lstmShape, taus []float64, train bool) *lstmNet[T] {
	p := sh.numParams()
	n := &lstmNet[T]{
		sh: sh, taus: taus, k: lstmKernelsFor[T](),
		params: make([]T, p),
		w:      make([][]T, sh.layers), dw: make([][]T, sh.layers),
		wp: make([][]T, sh.layers), whp: make([][]T, sh.layers), wxp: make([][]T, sh.layers),
		gq: make([]float64, sh.levels), sg: make([]float64, sh.levels),
	}
	if train {
		n.grads, n.m, n.v, n.saved = make([]T, p), make([]T, p), make([]T, p), make([]T, 3*p)
	}
	off := 0
	for l := range sh.layers {
		sz := sh.rows(l) * 4 * sh.hidden
		n.w[l] = n.params[off : off+sz : off+sz]
		g, in := 4*sh.hidden, sh.inputs(l)
		if n.k.packedFwd {
			n.wp[l] = make([]T, kern.PackedLen(sh.rows(l), g))
		}
		if train {
			n.dw[l] = n.grads[off : off+sz : off+sz]
			n.whp[l] = make([]T, kern.PackedLen(g, sh.hidden))
			if l > 0 {
				n.wxp[l] = make([]T, kern.PackedLen(g, in))
			}
		}
		off += sz
	}
	n.wo = n.params[off:]
	if train {
		n.dwo = n.grads[off:]
	}
	return n
}

// average moves n's parameters towards src's by the weight w in (0, 1]:
// params += w·(src.params − params). The packed weights are not
// refreshed (see transpose).
func (n *lstmNet[T]) average(src *lstmNet[T], w T) {
	for i, p := range src.params {
		n.params[i] += w * (p - n.params[i])
	}
}

// matrices calls f with the offset, rows and columns of every matrix in
// params, in order.
func (n *lstmNet[T]) matrices(f func(off, rows, cols int)) {
	off, g := 0, 4*n.sh.hidden
	for l := range n.sh.layers {
		f(off, n.sh.rows(l), g)
		off += n.sh.rows(l) * g
	}
	f(off, n.sh.hidden+1, n.sh.outputs())
}

// lstmUniform returns a uniform value in [-a, a) from rng.
func lstmUniform(rng *rand.PCG, a float64) float64 {
	u := float64(rng.Uint64()>>11) * 0x1p-53
	return (2*u - 1) * a
}

// init draws the initial parameters from rng: every weight uniform in
// ±1/√hidden (PyTorch's LSTM and Linear default), forget-gate biases 1,
// other gate biases 0, mean and lowest-quantile biases 0 and the other
// quantile biases -1 (so the initial quantiles are spread by
// softplus(-1) ≈ 0.31 scaled units).
func (n *lstmNet[T]) init(rng *rand.PCG) {
	a := 1 / math.Sqrt(float64(n.sh.hidden))
	hid, nq := n.sh.hidden, n.sh.levels
	layer := 0
	n.matrices(func(off, rows, cols int) {
		w := n.params[off : off+rows*cols]
		for i := range w[:(rows-1)*cols] {
			w[i] = T(lstmUniform(rng, a))
		}
		b := w[(rows-1)*cols:]
		for j := range b {
			switch {
			case layer < n.sh.layers:
				b[j] = 0
				if j >= hid && j < 2*hid {
					b[j] = 1
				}
			case j%(1+nq) <= 1:
				b[j] = 0
			default:
				b[j] = -1
			}
		}
		layer++
	})
	clear(n.m)
	clear(n.v)
	n.step = 0
	n.transpose()
}

// transpose refreshes the packed weights wp, whp and wxp (those the net
// has) from w.
func (n *lstmNet[T]) transpose() {
	g, hid := 4*n.sh.hidden, n.sh.hidden
	for l, w := range n.w {
		in, rows := n.sh.inputs(l), n.sh.rows(l)
		if n.k.packedFwd {
			n.k.packB(n.wp[l], w, rows, g, g, false)
		}
		if n.whp[l] != nil {
			n.k.packB(n.whp[l], w[in*g:], g, hid, g, true)
		}
		if n.wxp[l] != nil {
			n.k.packB(n.wxp[l], w, g, in, g, true)
		}
	}
}

// lstmSeq is a sequence of per-step matrices in one slice: step t is
// data[t*stride:][:size]. A zero stride makes every step the same slice,
// for state that is only carried forward (forecasting).
type lstmSeq[T lstmFloat] struct {
	data         []T
	stride, size int
}

func (s lstmSeq[T]) at(t int) []T {
	o := t * s.stride
	return s.data[o : o+s.size : o+s.size]
}

// lstmRowBlock is the number of rows processed together: forward runs a
// block through every step before the next block, backward likewise per
// layer, so weights, gates and state of the block stay in cache (at
// batch 413 this is about 10% faster than all rows step by step; 32 to
// 128 measure alike).
const lstmRowBlock = 64

// lstmBufs is the scratch of one forward (and, for training, backward)
// pass over a batch of rows. Training buffers keep every step of every
// layer for backpropagation through time; forecasting buffers only the
// carried state. Capacity is fixed at construction; setRows picks the
// batch size of the next pass. Row r of step t of a sequence is row
// t*rows+r of its matrix, so all steps of a layer form one matrix of
// L*rows rows.
type lstmBufs[T lstmFloat] struct {
	sh    lstmShape
	train bool
	cap   int // rows the buffers hold
	rows  int // rows of the current pass

	x      []T       // forecasting: L×rows×features input features
	head   []T       // rows×(hidden+1): [h_L | 1], the head input
	zs     []T       // training: 2 blocks of lstmRowBlock×4hidden gate scratch
	out    []T       // rows×outputs head pre-activations; the head gradient after lossGrad
	tgt    []T       // training: rows×H scaled targets
	dc     []T       // training: rows×hidden cell-state gradient
	scale  []float64 // per row scale s
	pmean  []float64 // forecasting: per row mean price of the window
	pad    []int32   // per row number of padded leading steps
	maxPad int

	// Per layer: xh step t is rows×(in+hidden+1) holding [x_t | h_{t-1} | 1];
	// z the gates (rows×4hidden), c the cell state (step t is c_{t-1}), th
	// tanh(c_t) and dh the gradient of h_t (rows×hidden each).
	xh, z, c, th, dh                []lstmSeq[T]
	xhMem, zMem, cMem, thMem, dhMem [][]T
}

// newLSTMBufs allocates buffers for up to rows rows.
func newLSTMBufs[T lstmFloat](sh lstmShape, rows int, train bool) *lstmBufs[T] {
	L, hid, g, nl := sh.window, sh.hidden, 4*sh.hidden, sh.layers
	bf := &lstmBufs[T]{
		sh: sh, train: train, cap: rows,
		head:  make([]T, rows*(hid+1)),
		out:   make([]T, rows*sh.outputs()),
		scale: make([]float64, rows),
		pmean: make([]float64, rows),
		pad:   make([]int32, rows),
		xh:    make([]lstmSeq[T], nl), z: make([]lstmSeq[T], nl), c: make([]lstmSeq[T], nl),
		th: make([]lstmSeq[T], nl), dh: make([]lstmSeq[T], nl),
		xhMem: make([][]T, nl), zMem: make([][]T, nl), cMem: make([][]T, nl),
		thMem: make([][]T, nl), dhMem: make([][]T, nl),
	}
	lstmOnes(bf.head, hid+1)
	steps, cSteps := 1, 1
	if train {
		cSteps = L + 1
		steps = L
		bf.tgt = make([]T, rows*sh.horizon)
		bf.dc = make([]T, rows*hid)
		bf.zs = make([]T, 2*min(rows, lstmRowBlock)*g)
	} else {
		bf.x = make([]T, L*rows*sh.features)
	}
	for l := range nl {
		ld := sh.rows(l)
		bf.xhMem[l] = make([]T, steps*rows*ld)
		lstmOnes(bf.xhMem[l], ld)
		bf.cMem[l] = make([]T, cSteps*rows*hid)
		bf.thMem[l] = make([]T, steps*rows*hid)
		if train {
			bf.zMem[l] = make([]T, steps*rows*g)
			bf.dhMem[l] = make([]T, steps*rows*hid)
		} else if l == 0 {
			bf.zMem[l] = make([]T, rows*g)
		} else {
			bf.zMem[l] = bf.zMem[0] // one gate matrix serves every layer in turn
		}
	}
	bf.setRows(rows)
	return bf
}

// lstmOnes sets the last column of every row of the matrix a (row length
// ld) to one.
func lstmOnes[T lstmFloat](a []T, ld int) {
	for i := ld - 1; i < len(a); i += ld {
		a[i] = 1
	}
}

// setRows lays the buffers out for a pass over rows ≤ cap rows.
func (bf *lstmBufs[T]) setRows(rows int) {
	if rows > bf.cap {
		panic("model: lstm buffers too small")
	}
	bf.rows = rows
	L, hid, g := bf.sh.window, bf.sh.hidden, 4*bf.sh.hidden
	seq := func(mem []T, steps, size int, rolling bool) lstmSeq[T] {
		if rolling {
			return lstmSeq[T]{mem[:size], 0, size}
		}
		return lstmSeq[T]{mem[:steps*size], size, size}
	}
	roll := !bf.train
	for l := range bf.sh.layers {
		bf.xh[l] = seq(bf.xhMem[l], L, rows*bf.sh.rows(l), roll)
		bf.z[l] = seq(bf.zMem[l], L, rows*g, roll)
		bf.c[l] = seq(bf.cMem[l], L+1, rows*hid, roll)
		bf.th[l] = seq(bf.thMem[l], L, rows*hid, roll)
		if bf.train {
			bf.dh[l] = seq(bf.dhMem[l], L, rows*hid, false)
		}
	}
}

// setMaxPad records the largest padding of the current rows.
func (bf *lstmBufs[T]) setMaxPad() {
	bf.maxPad = 0
	for _, p := range bf.pad[:bf.rows] {
		bf.maxPad = max(bf.maxPad, int(p))
	}
}

// clearPadded zeroes, for every row r in [r0, r1) still in its padding at
// step t, row r-r0 of the matrix a (row stride lda; nil for none) and of
// the matrix b (row stride ldb), hidden columns each.
func (bf *lstmBufs[T]) clearPadded(t, r0, r1 int, a []T, lda int, b []T, ldb int) {
	hid := bf.sh.hidden
	for i, p := range bf.pad[r0:r1] {
		if int(p) > t {
			if a != nil {
				clear(a[i*lda : i*lda+hid])
			}
			clear(b[i*ldb : i*ldb+hid])
		}
	}
}

// lstmScatter copies row r of the rows×hid matrix h to columns
// [off, off+hid) of row r of dst (row length ld).
func lstmScatter[T lstmFloat](dst []T, ld, off int, h []T, rows, hid int) {
	for r := range rows {
		copy(dst[r*ld+off:r*ld+off+hid], h[r*hid:(r+1)*hid])
	}
}

// forward runs the network over the input features and leaves the head
// pre-activations in bf.out. Rows never interact, so the batch is
// processed in blocks of lstmRowBlock rows, each through all steps and
// layers before the next block; the weights and the block's state stay
// in cache. Per step and layer:
//
//	z = [x_t | h_{t-1} | 1]·W; (c_t, h_t) = cell(z, c_{t-1})
//
// where the cell writes h_t straight into the stacked input of the next
// step and of the layer above (or the head). A row still in its left
// padding at step t has its h and c reset to zero after the cell, so the
// state entering its first real step is exactly the initial state: a
// padded window gives bit-for-bit the result of the shorter window
// without padding, and padded steps receive no gradient.
//
// Training buffers must hold the features in the x columns of bf.xh[0];
// forecasting buffers hold them in bf.x.
func (n *lstmNet[T]) forward(bf *lstmBufs[T]) {
	sh := n.sh
	B, hid := bf.rows, sh.hidden
	for l := range sh.layers {
		in, ld := sh.inputs(l), sh.rows(l)
		xh := bf.xh[l].at(0)
		for r := range B {
			clear(xh[r*ld+in : r*ld+in+hid])
		}
		clear(bf.c[l].at(0))
	}
	n.forwardFrom(bf)
}

// forwardFrom runs like forward but from the state already in bf rather
// than from zero: per layer l, h_{-1} in the recurrent columns of step 0
// of bf.xh[l] and c_{-1} in step 0 of bf.c[l] (see lstmBufs.loadState).
func (n *lstmNet[T]) forwardFrom(bf *lstmBufs[T]) {
	sh, k := n.sh, n.k
	B, hid := bf.rows, sh.hidden
	for r0 := 0; r0 < B; r0 += lstmRowBlock {
		n.forwardRows(bf, r0, min(r0+lstmRowBlock, B))
	}
	o := sh.outputs()
	k.gemmNN(B, o, hid+1, bf.head, hid+1, n.wo, o, bf.out, o, false)
}

// forwardRows runs rows [r0, r1) through all steps and layers.
func (n *lstmNet[T]) forwardRows(bf *lstmBufs[T], r0, r1 int) {
	sh, k := n.sh, n.k
	B, L, hid, g, nf := bf.rows, bf.sh.window, sh.hidden, 4*sh.hidden, sh.features
	nb, top := r1-r0, sh.layers-1
	for t := range L {
		for l := range sh.layers {
			in, ld := sh.inputs(l), sh.rows(l)
			xh := bf.xh[l].at(t)[r0*ld : r1*ld]
			if l == 0 && !bf.train {
				lstmScatter(xh, ld, 0, bf.x[(t*B+r0)*nf:(t*B+r1)*nf], nb, nf)
			}
			z := bf.z[l].at(t)[r0*g : r1*g]
			zb := z
			if bf.train {
				// The product writes the pre-activations to a cache-hot
				// block and the cell streams the gates into the cold
				// sequence: the product's scattered tile stores into the
				// cold sequence are slow.
				zb = bf.zs[:nb*g]
			}
			c1 := bf.c[l].at(t + 1)[r0*hid : r1*hid]
			if k.packedFwd {
				k.gemmNNP(nb, g, ld, xh, ld, n.wp[l], zb, g, false)
			} else {
				k.gemmNN(nb, g, ld, xh, ld, n.w[l], g, zb, g, false)
			}
			// h_t goes straight into the stacked inputs that read it:
			// the next step's and the layer above's (or the head).
			var h1, h2 []T
			var ld1, ld2 int
			if t+1 < L {
				h1, ld1 = bf.xh[l].at(t + 1)[r0*ld+in:r1*ld], ld
			}
			if l < top {
				ldu := sh.rows(l + 1)
				h2, ld2 = bf.xh[l+1].at(t)[r0*ldu:r1*ldu], ldu
			} else if t == L-1 {
				h2, ld2 = bf.head[r0*(hid+1):r1*(hid+1)], hid+1
			}
			if h1 == nil {
				h1, ld1, h2 = h2, ld2, nil
			}
			k.cellFwd(z, zb, bf.c[l].at(t)[r0*hid:r1*hid], c1, bf.th[l].at(t)[r0*hid:r1*hid], h1, ld1, h2, ld2, nb, hid)
			if t < bf.maxPad {
				bf.clearPadded(t, r0, r1, c1, hid, h1, ld1)
				if h2 != nil {
					bf.clearPadded(t, r0, r1, nil, 0, h2, ld2)
				}
			}
		}
	}
}

// lstmSoftplusSigmoid returns log(1+eˣ) and its derivative 1/(1+e⁻ˣ).
func lstmSoftplusSigmoid(x float64) (sp, sg float64) {
	e := math.Exp(-math.Abs(x))
	sp = max(x, 0) + math.Log1p(e)
	if x >= 0 {
		sg = 1 / (1 + e)
	} else {
		sg = e / (1 + e)
	}
	return sp, sg
}

// lossGrad returns the loss of the batch and replaces bf.out by its
// gradient. Per example the loss is, averaged over the H steps, the
// squared error of the mean softplus(a) plus the pinball loss of each
// quantile, all in scaled units; quantile j is b_0 plus the sum of
// softplus(b_i) for 0 < i ≤ j (the unclamped quantile: forecasts clamp it
// at zero). At a tie (target equal to a quantile) the pinball
// subgradient 1-τ is used. The batch loss is the mean of the examples'
// losses weighted by w_r = s_r / mean(s): in scaled units a series
// selling 20 a day would otherwise weigh as much as one selling one a
// week, and the volume (and the weight of accuracy metrics such as
// WRMSSE) sits with the former. Weighting by s_r measured better than by
// 1 or s_r² on the M5 dev set (see the README).
func (n *lstmNet[T]) lossGrad(bf *lstmBufs[T]) float64 {
	B, H, nq := bf.rows, n.sh.horizon, n.sh.levels
	o := n.sh.outputs()
	var ssum float64
	for _, s := range bf.scale[:B] {
		ssum += s
	}
	gq, sg := n.gq, n.sg
	var loss float64
	for r := range B {
		w := bf.scale[r] * float64(B) / ssum
		inv := w / float64(B*H)
		var rl float64
		for h := range H {
			out := bf.out[r*o+h*(1+nq) : r*o+(h+1)*(1+nq)]
			y := float64(bf.tgt[r*H+h])
			sp, s := lstmSoftplusSigmoid(float64(out[0]))
			d := sp - y
			rl += d * d
			out[0] = T(2 * d * s * inv)
			cum := 0.0
			for j, tau := range n.taus {
				sp, s := float64(out[1]), 1.0
				if j > 0 {
					sp, s = lstmSoftplusSigmoid(float64(out[1+j]))
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

// backward backpropagates the head gradient in bf.out through the head
// and every layer over all L steps and writes the parameter gradients.
// Layer by layer, blocks of lstmRowBlock rows walk the steps backwards:
// the fused cell kernel, then the recurrent product dh_{t-1} += dz_t·Whᵀ
// (Wᵀ is kept packed, so the product is NN) and the input gradient of
// the layer below, dx_t = dz_t·Wxᵀ, and the block's share of the weight
// gradient including the bias row, dW += [x_t | h_{t-1} | 1]ᵀ·dz_t, all
// while the block of dz is in cache. (One product over all L·rows rows
// at the end re-read dZ from memory and was slower.)
func (n *lstmNet[T]) backward(bf *lstmBufs[T]) {
	sh, k := n.sh, n.k
	B, L, hid, o := bf.rows, sh.window, sh.hidden, sh.outputs()
	top := sh.layers - 1
	k.gemmTN(hid+1, o, B, bf.head, hid+1, bf.out, o, n.dwo, o, false)
	k.gemmNT(B, hid, o, bf.out, o, n.wo, o, bf.dh[top].at(L-1), hid, false)
	for l := top; l >= 0; l-- {
		for r0 := 0; r0 < B; r0 += lstmRowBlock {
			n.backwardRows(bf, l, r0, min(r0+lstmRowBlock, B))
		}
	}
}

// backwardRows backpropagates rows [r0, r1) of layer l through all steps
// and adds their share of the weight gradient to dW_l (the first block
// overwrites it). The gate gradients dz of a step go to a cache-hot
// scratch block, where the recurrent and input products read them; the
// weight gradient dW_l += [x_t | h_{t-1} | 1]ᵀ·dz_t is taken for two steps
// at once (k = 2·rows), the upper step's dz kept in the second scratch
// block.
func (n *lstmNet[T]) backwardRows(bf *lstmBufs[T], l, r0, r1 int) {
	sh, k := n.sh, n.k
	L, hid, g := sh.window, sh.hidden, 4*sh.hidden
	nb, top := r1-r0, sh.layers-1
	in, ld := sh.inputs(l), sh.rows(l)
	dh, z, c, th, xh := bf.dh[l], bf.z[l], bf.c[l], bf.th[l], bf.xh[l]
	dc := bf.dc[r0*hid : r1*hid]
	clear(dc)
	first, pending := r0 == 0, false
	for t := L - 1; t >= 0; t-- {
		dht := dh.at(t)[r0*hid : r1*hid]
		if t < bf.maxPad {
			bf.clearPadded(t, r0, r1, dht, hid, dc, hid)
		}
		// The upper step of a pair (t, t-1) uses the second block.
		upper := !pending && t > 0
		dzb := bf.zs[:nb*g]
		if upper {
			dzb = bf.zs[nb*g : 2*nb*g]
		}
		k.cellBwd(z.at(t)[r0*g:r1*g], c.at(t)[r0*hid:r1*hid], th.at(t)[r0*hid:r1*hid], dht, dc, dzb, dc, nb, hid)
		if t > 0 {
			// The top layer's dh_{t-1} has no other source: overwrite.
			k.gemmNNP(nb, hid, g, dzb, g, n.whp[l], dh.at(t - 1)[r0*hid:r1*hid], hid, l != top)
		}
		if l > 0 {
			k.gemmNNP(nb, in, g, dzb, g, n.wxp[l], bf.dh[l-1].at(t)[r0*hid:r1*hid], hid, false)
		}
		if upper {
			pending = true
			continue
		}
		segs := 1
		if pending {
			segs = 2
		}
		k.gemmTNSum(ld, g, nb, segs, xh.data[t*xh.stride+r0*ld:], ld, xh.stride, bf.zs, g, nb*g, n.dw[l], g, !first)
		first, pending = false, false
	}
}

// update applies one AdamW step with global-norm gradient clipping. It
// returns false, leaving parameters and optimiser state untouched, when
// the gradient is not finite or the step would make any parameter or
// moment non-finite.
func (n *lstmNet[T]) update(hp *lstmHyper) bool {
	k := n.k
	sq := k.sqNorm(n.grads)
	if !lstmFinite(sq) {
		return false
	}
	if norm := math.Sqrt(sq); norm > hp.clip {
		k.scale(T(hp.clip/norm), n.grads)
	}
	p := len(n.params)
	copy(n.saved[:p], n.params)
	copy(n.saved[p:2*p], n.m)
	copy(n.saved[2*p:], n.v)
	t := float64(n.step + 1)
	bc1, bc2 := T(1-math.Pow(hp.beta1, t)), T(1-math.Pow(hp.beta2, t))
	lr, b1, b2, eps, wd := T(hp.lr), T(hp.beta1), T(hp.beta2), T(hp.eps), T(hp.wd)
	n.matrices(func(off, rows, cols int) {
		w, b := off+(rows-1)*cols, off+rows*cols
		k.adam(n.params[off:w], n.grads[off:w], n.m[off:w], n.v[off:w], lr, b1, b2, eps, wd, bc1, bc2)
		k.adam(n.params[w:b], n.grads[w:b], n.m[w:b], n.v[w:b], lr, b1, b2, eps, 0, bc1, bc2)
	})
	if !lstmFinite(k.sqNorm(n.params)) || !lstmFinite(k.sqNorm(n.m)) || !lstmFinite(k.sqNorm(n.v)) {
		copy(n.params, n.saved[:p])
		copy(n.m, n.saved[p:2*p])
		copy(n.v, n.saved[2*p:])
		return false
	}
	n.step++
	n.transpose()
	return true
}

// trainStep runs forward, loss, backward and update on the batch in bf. It
// returns the batch loss and whether the step was taken.
func (n *lstmNet[T]) trainStep(bf *lstmBufs[T], hp *lstmHyper) (float64, bool) {
	n.forward(bf)
	loss := n.lossGrad(bf)
	if !lstmFinite(loss) {
		return loss, false
	}
	n.backward(bf)
	return loss, n.update(hp)
}

func lstmFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// stateLen returns the length of a row's carried state: per layer h and c.
func (s lstmShape) stateLen() int { return 2 * s.layers * s.hidden }

// loadState sets the state row r of forecasting buffers starts from to
// src (stateLen values: per layer h, then c), for forwardFrom.
func (bf *lstmBufs[T]) loadState(r int, src []T) {
	hid := bf.sh.hidden
	for l := range bf.sh.layers {
		in, ld := bf.sh.inputs(l), bf.sh.rows(l)
		st := src[2*l*hid : 2*(l+1)*hid]
		copy(bf.xh[l].at(0)[r*ld+in:r*ld+in+hid], st[:hid])
		copy(bf.c[l].at(0)[r*hid:(r+1)*hid], st[hid:])
	}
}

// saveState copies the state of row r after a forward pass of forecasting
// buffers to dst (layout of loadState). The last step writes h of a layer
// only where it is read: into the inputs of the layer above, or the head.
func (bf *lstmBufs[T]) saveState(r int, dst []T) {
	hid, top := bf.sh.hidden, bf.sh.layers-1
	for l := range bf.sh.layers {
		st := dst[2*l*hid : 2*(l+1)*hid]
		if l < top {
			ld := bf.sh.rows(l + 1)
			copy(st[:hid], bf.xh[l+1].at(0)[r*ld:r*ld+hid])
		} else {
			copy(st[:hid], bf.head[r*(hid+1):r*(hid+1)+hid])
		}
		copy(st[hid:], bf.c[l].at(0)[r*hid:(r+1)*hid])
	}
}
