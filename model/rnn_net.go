package model

import (
	"math"
	"math/rand/v2"

	"github.com/trendstream/trendstream/model/internal/kern"
)

// This file holds the network behind LSTM and GRU: stacked recurrent
// layers feeding the shared head (see outHead), forward, backward through
// time and the carried state.

// rnnCell is the cell of a recurrent network.
type rnnCell uint8

const (
	lstmCell rnnCell = iota // gates [i | f | g | o], state h and c
	gruCell                 // gates [n_x | r | u | n_h] (kern.GRUForwardTo32), state h
)

// rnnPart is a block of rows of a layer's weights W_l: columns [row0,
// row0+rows) of the step input times these rows (the last of them the
// bias, multiplying a constant one) give gate columns [zcol, zcol+gw).
// Each part is one matrix of the parameters.
type rnnPart struct{ row0, rows, zcol int }

// rnnProd is one product of the forward pass: part's weight columns
// [wcol, wcol+cols) write gate columns from its zcol+wcol, or add to them
// with acc.
type rnnProd struct {
	part, wcol, cols int
	acc              bool
}

// rnnLayer is the layout of one layer. Its step input xh_t, row length
// ld, holds x_t (in columns from 0), h_{t-1} (hidden columns from hOff)
// and the constant ones. W_l is ld×gw, and the gate pre-activations z are
// 4·hidden wide for both cells. For the LSTM the step input is
// [x_t | h_{t-1} | 1] and one part and product give all four gates. For
// the GRU it is [x_t | 1 | h_{t-1} | 1], W_l = [W_x; W_h] (each 3·hidden
// wide, so that the reset gate can scale the recurrent part of the
// candidate), and [x_t | 1]·W_x gives [n_x | r | u], [h_{t-1} | 1]·W_h
// gives [r | u | n_h]: three products, [x_t | 1]·W_x written, the r and u
// columns of [h_{t-1} | 1]·W_h added, its n_h columns written.
type rnnLayer struct {
	in, ld, hOff int
	parts        []rnnPart
	prods        []rnnProd
}

// rnnNet is a stacked recurrent network: Layers layers of cells run over
// the L input steps, and the last layer's final hidden state feeds the
// head. The parameters hold W_0 … W_{layers-1}, Wo in turn (see
// rnnLayer and outHead), each split into matrices whose last row is a
// bias.
type rnnNet[T float] struct {
	sh   shape
	k    *kernels[T]
	cell rnnCell
	lay  []rnnLayer
	gw   int // width of a product's gate columns
	hz   int // first gate column of the product that reads h_{t-1}
	optim[T]
	outHead[T]

	w, dw [][]T // per layer W_l and its gradient (views into params, grads)
	// Per layer packed copies of the weights (kern.PackB layout),
	// refreshed after each update: wp[l][j] is the part of W_l of product
	// j for the forward pass; for backward, whp is the recurrent part
	// W_h,lᵀ (gw×hidden) and wxp the input part W_x,lᵀ (gw×in_l, layers
	// above the first only).
	wp       [][][]T
	whp, wxp [][]T
	wo, dwo  []T
}

// newRNNNet returns a network of shape sh with the given cell and zero
// parameters. Without train it holds only what forecasting needs:
// parameters and the packed copies the forward pass reads, no gradients,
// optimizer state, rollback copy or the transposed copies of backward.
func newRNNNet[T float](sh shape, cell rnnCell, taus []float64, train bool) *rnnNet[T] {
	hid, g := sh.hidden, 4*sh.hidden
	n := &rnnNet[T]{
		sh: sh, k: kernelsFor[T](), cell: cell, lay: make([]rnnLayer, sh.layers),
		gw: g, outHead: newOutHead[T](sh, taus),
		w: make([][]T, sh.layers), dw: make([][]T, sh.layers),
		wp: make([][][]T, sh.layers), whp: make([][]T, sh.layers), wxp: make([][]T, sh.layers),
	}
	if cell == gruCell {
		n.gw, n.hz = 3*hid, hid
	}
	var pl paramLayout
	for l := range sh.layers {
		in := sh.inputs(l)
		ly := rnnLayer{in: in, ld: in + hid + 1, hOff: in}
		ly.parts = []rnnPart{{0, ly.ld, 0}}
		ly.prods = []rnnProd{{0, 0, g, false}}
		if cell == gruCell {
			ly = rnnLayer{in: in, ld: in + hid + 2, hOff: in + 1}
			ly.parts = []rnnPart{{0, in + 1, 0}, {in + 1, hid + 1, hid}}
			ly.prods = []rnnProd{{0, 0, 3 * hid, false}, {1, 0, 2 * hid, true}, {1, 2 * hid, hid, false}}
		}
		n.lay[l] = ly
		for _, p := range ly.parts {
			pl.add(p.rows, n.gw)
		}
	}
	wo := pl.add(hid+1, sh.outputs())
	n.optim = newOptim[T](pl, train)
	off := 0
	for l, ly := range n.lay {
		sz := ly.ld * n.gw
		n.w[l] = n.params[off : off+sz : off+sz]
		if n.k.packedFwd {
			n.wp[l] = make([][]T, len(ly.prods))
			for j, p := range ly.prods {
				n.wp[l][j] = make([]T, kern.PackedLen(ly.parts[p.part].rows, p.cols))
			}
		}
		if train {
			n.dw[l] = n.grads[off : off+sz : off+sz]
			n.whp[l] = make([]T, kern.PackedLen(n.gw, hid))
			if l > 0 {
				n.wxp[l] = make([]T, kern.PackedLen(n.gw, ly.in))
			}
		}
		off += sz
	}
	n.wo = n.of(n.params, wo)
	if train {
		n.dwo = n.of(n.grads, wo)
	}
	return n
}

// init draws the initial parameters from rng: every weight uniform in
// ±1/√hidden (PyTorch's LSTM, GRU and Linear default), the biases of the
// gates that keep the state (the LSTM's forget gate, the GRU's update
// gate, in its input product) 1, other gate biases 0, and the head biases
// of outHead.initBias.
func (n *rnnNet[T]) init(rng *rand.PCG) {
	a := 1 / math.Sqrt(float64(n.sh.hidden))
	hid := n.sh.hidden
	keep, parts := hid, 1 // first bias column of the keeping gate, parts per layer
	if n.cell == gruCell {
		keep, parts = 2*hid, 2
	}
	top := len(n.mats) - 1
	for i, s := range n.mats {
		b := n.initUniform(rng, s, a)
		if i == top {
			n.initBias(b)
			continue
		}
		clear(b)
		if i%parts == 0 {
			for j := keep; j < keep+hid; j++ {
				b[j] = 1
			}
		}
	}
	n.resetOptimizer()
	n.pack()
}

// pack refreshes the packed weights wp, whp and wxp (those the net has)
// from w.
func (n *rnnNet[T]) pack() {
	gw, hid := n.gw, n.sh.hidden
	for l, w := range n.w {
		ly := n.lay[l]
		if n.k.packedFwd {
			for j, p := range ly.prods {
				pt := ly.parts[p.part]
				n.k.packB(n.wp[l][j], w[pt.row0*gw+p.wcol:], pt.rows, p.cols, gw, false)
			}
		}
		if n.whp[l] != nil {
			n.k.packB(n.whp[l], w[ly.hOff*gw:], gw, hid, gw, true)
		}
		if n.wxp[l] != nil {
			n.k.packB(n.wxp[l], w, gw, ly.in, gw, true)
		}
	}
}

// rnnRowBlock is the number of rows processed together: forward runs a
// block through every step before the next block, backward likewise per
// layer, so weights, gates and state of the block stay in cache rather
// than streaming from memory once per time step.
const rnnRowBlock = 64

// rnnBufs is the scratch of one forward (and, for training, backward)
// pass over a batch of rows. Training buffers keep every step of every
// layer for backpropagation through time; forecasting buffers only the
// carried state. Capacity is fixed at construction; setRows picks the
// batch size of the next pass. Row r of step t of a sequence is row
// t*rows+r of its matrix, so all steps of a layer form one matrix of
// L*rows rows.
type rnnBufs[T float] struct {
	rowBufs[T]
	sh    shape
	lay   []rnnLayer
	cell  rnnCell
	train bool

	x  []T // forecasting: L×rows×features input features
	dx []T // training, when not nil: L×rows×features gradient of the input features (see explain.go)
	zs []T // training: 2 blocks of rnnRowBlock×4hidden gate scratch
	dc []T // training: rows×hidden gradient carried to the previous step (of c for the LSTM)

	// Per layer: xh step t is rows×ld holding the step input (see
	// rnnLayer); z the gates (rows×4hidden), and for the LSTM c the cell
	// state (step t is c_{t-1}) and th tanh(c_t); dh the gradient of h_t
	// (rows×hidden each).
	xh, z, c, th, dh                []seq[T]
	xhMem, zMem, cMem, thMem, dhMem [][]T
}

// newBufs allocates buffers for up to rows rows.
func (n *rnnNet[T]) newBufs(rows int, train bool) *rnnBufs[T] {
	return newRNNBufs(n, n.sh, rows, train)
}

// newStepBufs allocates forecasting buffers for up to rows rows of one
// step from a carried state.
func (n *rnnNet[T]) newStepBufs(rows int) *rnnBufs[T] {
	sh := n.sh
	sh.window = 1
	return newRNNBufs(n, sh, rows, false)
}

func newRNNBufs[T float](n *rnnNet[T], sh shape, rows int, train bool) *rnnBufs[T] {
	L, hid, g, nl := sh.window, sh.hidden, 4*sh.hidden, sh.layers
	bf := &rnnBufs[T]{
		rowBufs: newRowBufs[T](sh, rows, train),
		sh:      sh, lay: n.lay, cell: n.cell, train: train,
		xh: make([]seq[T], nl), z: make([]seq[T], nl), c: make([]seq[T], nl),
		th: make([]seq[T], nl), dh: make([]seq[T], nl),
		xhMem: make([][]T, nl), zMem: make([][]T, nl), cMem: make([][]T, nl),
		thMem: make([][]T, nl), dhMem: make([][]T, nl),
	}
	steps, cSteps := 1, 1
	if train {
		cSteps = L + 1
		steps = L
		bf.dc = make([]T, rows*hid)
		bf.zs = make([]T, 2*min(rows, rnnRowBlock)*g)
	} else {
		bf.x = make([]T, L*rows*sh.features)
	}
	for l, ly := range n.lay {
		bf.xhMem[l] = make([]T, steps*rows*ly.ld)
		for _, p := range ly.parts {
			setCol(bf.xhMem[l], ly.ld, p.row0+p.rows-1)
		}
		if n.cell == lstmCell {
			bf.cMem[l] = make([]T, cSteps*rows*hid)
			bf.thMem[l] = make([]T, steps*rows*hid)
		}
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

// setRows lays the buffers out for a pass over rows ≤ cap rows.
func (bf *rnnBufs[T]) setRows(rows int) {
	if rows > bf.cap {
		panic("model: recurrent buffers too small")
	}
	bf.rows = rows
	L, hid, g := bf.sh.window, bf.sh.hidden, 4*bf.sh.hidden
	sq := func(mem []T, steps, size int, rolling bool) seq[T] {
		if rolling {
			return seq[T]{mem[:size], 0, size}
		}
		return seq[T]{mem[:steps*size], size, size}
	}
	roll := !bf.train
	for l, ly := range bf.lay {
		bf.xh[l] = sq(bf.xhMem[l], L, rows*ly.ld, roll)
		bf.z[l] = sq(bf.zMem[l], L, rows*g, roll)
		if bf.cell == lstmCell {
			bf.c[l] = sq(bf.cMem[l], L+1, rows*hid, roll)
			bf.th[l] = sq(bf.thMem[l], L, rows*hid, roll)
		}
		if bf.train {
			bf.dh[l] = sq(bf.dhMem[l], L, rows*hid, false)
		}
	}
}

// featureDst returns where the features of row r go, as the x, ld, r
// and rows arguments of buildFeatures: in training straight into the
// first columns of the step inputs of layer 0, when forecasting into x,
// from which each step scatters them.
func (bf *rnnBufs[T]) featureDst(r int) (x []T, ld, row, rows int) {
	if bf.train {
		return bf.xh[0].data, bf.lay[0].ld, r, bf.rows
	}
	return bf.x, bf.sh.features, r, bf.rows
}

// clearPadded zeroes, for every row r in [r0, r1) still in its padding at
// step t, row r-r0 of the matrix a (row stride lda; nil for none) and of
// the matrix b (row stride ldb), hidden columns each.
func (bf *rnnBufs[T]) clearPadded(t, r0, r1 int, a []T, lda int, b []T, ldb int) {
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

// scatterRows copies row r of the rows×n matrix src to columns [off,
// off+n) of row r of dst (row length ld).
func scatterRows[T float](dst []T, ld, off int, src []T, rows, n int) {
	for r := range rows {
		copy(dst[r*ld+off:r*ld+off+n], src[r*n:(r+1)*n])
	}
}

// forward runs the network over the input features and leaves the head
// pre-activations in bf.out. Rows never interact, so the batch is
// processed in blocks of rnnRowBlock rows, each through all steps and
// layers before the next block; the weights and the block's state stay
// in cache. Per step and layer the products of rnnLayer give the gate
// pre-activations z, and the cell (c_t, h_t) = cell(z, c_{t-1}) writes
// h_t straight into the step input of the next step and of the layer
// above (or the head). A row still in its left padding at step t has its
// state reset to zero after the cell, so the state entering its first
// real step is exactly the initial state: a padded window gives
// bit-for-bit the result of the shorter window without padding, and
// padded steps receive no gradient.
//
// Training buffers must hold the features in the x columns of bf.xh[0];
// forecasting buffers hold them in bf.x.
func (n *rnnNet[T]) forward(bf *rnnBufs[T]) {
	B, hid := bf.rows, n.sh.hidden
	for l, ly := range n.lay {
		xh := bf.xh[l].at(0)
		for r := range B {
			clear(xh[r*ly.ld+ly.hOff : r*ly.ld+ly.hOff+hid])
		}
		if n.cell == lstmCell {
			clear(bf.c[l].at(0))
		}
	}
	n.forwardFrom(bf)
}

// forwardFrom runs like forward but from the state already in bf rather
// than from zero: per layer l, h_{-1} in the recurrent columns of step 0
// of bf.xh[l] and c_{-1} in step 0 of bf.c[l] (see loadState).
func (n *rnnNet[T]) forwardFrom(bf *rnnBufs[T]) {
	B := bf.rows
	for r0 := 0; r0 < B; r0 += rnnRowBlock {
		n.forwardRows(bf, r0, min(r0+rnnRowBlock, B))
	}
	n.outHead.forward(&bf.rowBufs, n.wo)
}

// forwardRows runs rows [r0, r1) through all steps and layers.
func (n *rnnNet[T]) forwardRows(bf *rnnBufs[T], r0, r1 int) {
	sh, k := n.sh, n.k
	B, L, hid, g, nf := bf.rows, bf.sh.window, sh.hidden, 4*sh.hidden, sh.features
	nb, top := r1-r0, sh.layers-1
	for t := range L {
		for l, ly := range n.lay {
			ld := ly.ld
			xh := bf.xh[l].at(t)[r0*ld : r1*ld]
			if l == 0 && !bf.train {
				scatterRows(xh, ld, 0, bf.x[(t*B+r0)*nf:(t*B+r1)*nf], nb, nf)
			}
			z := bf.z[l].at(t)[r0*g : r1*g]
			zb := z
			if bf.train {
				// The products write the pre-activations to a cache-hot
				// block and the cell streams the gates into the cold
				// sequence: the product's scattered tile stores into the
				// cold sequence are slow.
				zb = bf.zs[:nb*g]
			}
			for j, p := range ly.prods {
				pt := ly.parts[p.part]
				a, c := xh[pt.row0:], zb[pt.zcol+p.wcol:]
				if k.packedFwd {
					k.gemmNNP(nb, p.cols, pt.rows, a, ld, n.wp[l][j], c, g, p.acc)
				} else {
					k.gemmNN(nb, p.cols, pt.rows, a, ld, n.w[l][pt.row0*n.gw+p.wcol:], n.gw, c, g, p.acc)
				}
			}
			// h_t goes straight into the step inputs that read it: the
			// next step's and the layer above's (or the head).
			var h1, h2 []T
			var ld1, ld2 int
			if t+1 < L {
				h1, ld1 = bf.xh[l].at(t + 1)[r0*ld+ly.hOff:r1*ld], ld
			}
			if l < top {
				ldu := n.lay[l+1].ld
				h2, ld2 = bf.xh[l+1].at(t)[r0*ldu:r1*ldu], ldu
			} else if t == L-1 {
				h2, ld2 = bf.head[r0*(hid+1):r1*(hid+1)], hid+1
			}
			if h1 == nil {
				h1, ld1, h2 = h2, ld2, nil
			}
			var c1 []T // the LSTM's c_t, reset with h_t in the padding
			if n.cell == gruCell {
				k.gruFwd(z, zb, xh[ly.hOff:], ld, h1, ld1, h2, ld2, nb, hid)
			} else {
				c1 = bf.c[l].at(t + 1)[r0*hid : r1*hid]
				k.lstmFwd(z, zb, bf.c[l].at(t)[r0*hid:r1*hid], c1, bf.th[l].at(t)[r0*hid:r1*hid], h1, ld1, h2, ld2, nb, hid)
			}
			if t < bf.maxPad {
				bf.clearPadded(t, r0, r1, c1, hid, h1, ld1)
				if h2 != nil {
					bf.clearPadded(t, r0, r1, nil, 0, h2, ld2)
				}
			}
		}
	}
}

// backward backpropagates the head gradient in bf.out through the head
// and every layer over all L steps and writes the parameter gradients.
// Layer by layer, blocks of rnnRowBlock rows walk the steps backwards:
// the fused cell kernel, then the recurrent product dh_{t-1} += dz_t·Whᵀ
// (Wᵀ is kept packed, so the product is NN) and the input gradient of
// the layer below, dx_t = dz_t·Wxᵀ, and the block's share of the weight
// gradient including the bias rows, dW += xh_tᵀ·dz_t, all while the
// block of dz is in cache rather than re-read from memory by one product
// over all L·rows rows at the end.
func (n *rnnNet[T]) backward(bf *rnnBufs[T]) {
	L, top := n.sh.window, n.sh.layers-1
	n.outHead.backward(&bf.rowBufs, n.wo, n.dwo, bf.dh[top].at(L-1), n.sh.hidden)
	for l := top; l >= 0; l-- {
		for r0 := 0; r0 < bf.rows; r0 += rnnRowBlock {
			n.backwardRows(bf, l, r0, min(r0+rnnRowBlock, bf.rows))
		}
	}
}

// backwardRows backpropagates rows [r0, r1) of layer l through all steps
// and adds their share of the weight gradient to dW_l (the first block
// overwrites it). The gate gradients dz of a step go to a cache-hot
// scratch block, where the recurrent and input products read them; the
// weight gradient dW_l += xh_tᵀ·dz_t is taken for two steps at once
// (k = 2·rows), the upper step's dz kept in the second scratch block.
func (n *rnnNet[T]) backwardRows(bf *rnnBufs[T], l, r0, r1 int) {
	sh, k, ly := n.sh, n.k, n.lay[l]
	L, hid, g, gw := sh.window, sh.hidden, 4*sh.hidden, n.gw
	nb, top, ld := r1-r0, sh.layers-1, ly.ld
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
		if n.cell == gruCell {
			k.gruBwd(z.at(t)[r0*g:r1*g], xh.at(t)[r0*ld+ly.hOff:], ld, dht, dc, dzb, dc, nb, hid)
		} else {
			k.lstmBwd(z.at(t)[r0*g:r1*g], c.at(t)[r0*hid:r1*hid], th.at(t)[r0*hid:r1*hid], dht, dc, dzb, dc, nb, hid)
		}
		if t > 0 {
			// The top layer's dh_{t-1} has no other source: overwrite.
			k.gemmNNP(nb, hid, gw, dzb[n.hz:], g, n.whp[l], dh.at(t - 1)[r0*hid:r1*hid], hid, l != top)
		}
		if l > 0 {
			k.gemmNNP(nb, ly.in, gw, dzb, g, n.wxp[l], bf.dh[l-1].at(t)[r0*hid:r1*hid], hid, false)
		} else if bf.dx != nil {
			k.gemmNNP(nb, ly.in, gw, dzb, g, n.wxp[0], bf.dx[(t*bf.rows+r0)*ly.in:(t*bf.rows+r1)*ly.in], ly.in, false)
		}
		if upper {
			pending = true
			continue
		}
		segs := 1
		if pending {
			segs = 2
		}
		for _, p := range ly.parts {
			k.gemmTNSum(p.rows, gw, nb, segs, xh.data[t*xh.stride+r0*ld+p.row0:], ld, xh.stride,
				bf.zs[p.zcol:], g, nb*g, n.dw[l][p.row0*gw:], gw, !first)
		}
		first, pending = false, false
	}
}

// stateLen returns the length of a row's carried state: per layer h, and
// c for the LSTM.
func (n *rnnNet[T]) stateLen() int { return n.sh.layers * n.layerState() }

func (n *rnnNet[T]) layerState() int {
	if n.cell == lstmCell {
		return 2 * n.sh.hidden
	}
	return n.sh.hidden
}

// loadState sets the state row r of forecasting buffers starts from to
// src (stateLen values: per layer h, then c for the LSTM), for
// forwardFrom.
func (n *rnnNet[T]) loadState(bf *rnnBufs[T], r int, src []T) {
	hid, per := n.sh.hidden, n.layerState()
	for l, ly := range n.lay {
		st := src[l*per : (l+1)*per]
		copy(bf.xh[l].at(0)[r*ly.ld+ly.hOff:r*ly.ld+ly.hOff+hid], st[:hid])
		if n.cell == lstmCell {
			copy(bf.c[l].at(0)[r*hid:(r+1)*hid], st[hid:])
		}
	}
}

// saveState copies the state of row r after a forward pass of forecasting
// buffers to dst (layout of loadState). The last step writes h of a layer
// only where it is read: into the inputs of the layer above, or the head.
func (n *rnnNet[T]) saveState(bf *rnnBufs[T], r int, dst []T) {
	hid, per, top := n.sh.hidden, n.layerState(), n.sh.layers-1
	for l := range n.lay {
		st := dst[l*per : (l+1)*per]
		if l < top {
			ld := n.lay[l+1].ld
			copy(st[:hid], bf.xh[l+1].at(0)[r*ld:r*ld+hid])
		} else {
			copy(st[:hid], bf.head[r*(hid+1):r*(hid+1)+hid])
		}
		if n.cell == lstmCell {
			copy(st[hid:], bf.c[l].at(0)[r*hid:(r+1)*hid])
		}
	}
}
