package model

import (
	"math"
	"math/rand/v2"

	"github.com/trendstream/trendstream/model/internal/kern"
)

// This file holds the network behind Transformer: an input projection
// with sinusoidal positional encoding, Layers pre-norm encoder blocks of
// causal multi-head self-attention and a feed-forward layer, a final
// layer norm and the shared head (see outHead). Matrices are row-major;
// the B·L positions of a batch of B windows are the rows of one matrix,
// window by window (row r·L+t is step t of window r), so that the
// projections of all positions are single products.

// Constants of the Transformer's layers.
const (
	trfFF  = 4     // width of the feed-forward layer, in multiples of the model width
	lnEps  = 1e-5  // variance guard of the layer norms
	peBase = 10000 // wavelength scale of the positional encoding
)

// trfMat is a weight matrix as the Transformer's products read it:
// columns [col, col+cols) of the parameter matrix s, with a packed copy
// (kern.PackB) for the forward product when the kernels use packed
// weights, and in training a packed copy of its weight rows (all but the
// bias row) transposed, for the input gradient of backward.
type trfMat[T float] struct {
	s         matSpan
	col, cols int
	p, pt     []T
}

// trfBlock holds the parameter matrices of one encoder block: the layer
// norms' gains and biases (1×d each, no weight decay), the query, key and
// value projections Wqkv ((d+1)×3d, columns [Q | K | V], heads side by
// side in each; q and kv read its parts), the attention output Wo
// ((d+1)×d) and the feed-forward layers W1 ((d+1)×ff) and W2 ((ff+1)×d).
type trfBlock[T float] struct {
	ln1g, ln1b, ln2g, ln2b matSpan
	q, kv, wo, w1, w2      trfMat[T]
}

// trfNet is the Transformer encoder. For a window of L steps, with d the
// model width:
//
//	X_0 = [x | 1]·W_in + PE
//	X_{l+1} = H + FF(LN_2(H)),  H = X_l + Attn(LN_1(X_l))
//	h = LN_f(X_Layers) at the last step
//
// Attn is causal multi-head attention: step t attends to the real steps up
// to t, each head softmax(Q_h·K_hᵀ/√(d/heads)) over them; FF is
// GELU([c | 1]·W1)·W2 (tanh approximation). The last block computes its
// queries, attention and feed-forward layer at the last step only, the
// only one the head reads.
type trfNet[T float] struct {
	sh shape
	k  *kernels[T]
	optim[T]
	outHead[T]
	ff, dh int // feed-forward width, head width

	win              trfMat[T]
	blocks           []trfBlock[T]
	lnfg, lnfb, head matSpan
	products         []*trfMat[T] // every trfMat, for pack
	wo, dwo          []T          // the head's weights and gradient
	pe               []T          // L×d positional encoding of each step
}

// newTrfNet returns a network of shape sh with zero parameters; without
// train it has no gradients or optimizer state.
func newTrfNet[T float](sh shape, taus []float64, train bool) *trfNet[T] {
	d := sh.hidden
	n := &trfNet[T]{sh: sh, k: kernelsFor[T](), outHead: newOutHead[T](sh, taus), ff: trfFF * d, dh: d / sh.heads}
	var pl paramLayout
	whole := func(s matSpan) trfMat[T] { return trfMat[T]{s: s, cols: s.cols} }
	n.win = whole(pl.add(sh.features+1, d))
	n.blocks = make([]trfBlock[T], sh.layers)
	for l := range n.blocks {
		b := &n.blocks[l]
		b.ln1g, b.ln1b = pl.add(1, d), pl.add(1, d)
		qkv := pl.add(d+1, 3*d)
		b.q, b.kv = trfMat[T]{s: qkv, cols: d}, trfMat[T]{s: qkv, col: d, cols: 2 * d}
		b.wo = whole(pl.add(d+1, d))
		b.ln2g, b.ln2b = pl.add(1, d), pl.add(1, d)
		b.w1, b.w2 = whole(pl.add(d+1, n.ff)), whole(pl.add(n.ff+1, d))
		n.products = append(n.products, &b.q, &b.kv, &b.wo, &b.w1, &b.w2)
	}
	n.products = append(n.products, &n.win)
	n.lnfg, n.lnfb = pl.add(1, d), pl.add(1, d)
	n.head = pl.add(d+1, sh.outputs())
	n.optim = newOptim[T](pl, train)
	for _, w := range n.products {
		if n.k.packedFwd {
			w.p = make([]T, kern.PackedLen(w.s.rows, w.cols))
		}
		if train && w != &n.win {
			w.pt = make([]T, kern.PackedLen(w.cols, w.s.rows-1))
		}
	}
	n.wo = n.of(n.params, n.head)
	if train {
		n.dwo = n.of(n.grads, n.head)
	}
	n.pe = positionalEncoding[T](sh.window, d)
	return n
}

// positionalEncoding returns the sinusoidal encoding of Vaswani et al.
// (2017) for L steps of width d, by age: step t of a window of L is
// position L-1-t, so that the last step is always position 0 and a
// window's real steps are encoded alike however much padding precedes
// them. Column 2i is sin(p/base^(2i/d)), column 2i+1 its cos.
func positionalEncoding[T float](L, d int) []T {
	pe := make([]T, L*d)
	for t := range L {
		p := float64(L - 1 - t)
		for j := 0; j < d; j += 2 {
			s, c := math.Sincos(p / math.Pow(peBase, float64(j)/float64(d)))
			pe[t*d+j] = T(s)
			if j+1 < d {
				pe[t*d+j+1] = T(c)
			}
		}
	}
	return pe
}

// pack refreshes the packed copies of the weights.
func (n *trfNet[T]) pack() {
	for _, w := range n.products {
		v := n.of(n.params, w.s)[w.col:]
		if w.p != nil {
			n.k.packB(w.p, v, w.s.rows, w.cols, w.s.cols, false)
		}
		if w.pt != nil {
			n.k.packB(w.pt, v, w.cols, w.s.rows-1, w.s.cols, true)
		}
	}
}

// mul sets c (m rows, row stride ldc) to [a | 1]·W for the m rows of a
// (row stride lda, ending in the constant one), or adds it with acc.
func (n *trfNet[T]) mul(w *trfMat[T], m int, a []T, lda int, c []T, ldc int, acc bool) {
	if n.k.packedFwd {
		n.k.gemmNNP(m, w.cols, w.s.rows, a, lda, w.p, c, ldc, acc)
		return
	}
	n.k.gemmNN(m, w.cols, w.s.rows, a, lda, n.of(n.params, w.s)[w.col:], w.s.cols, c, ldc, acc)
}

// mulT sets da (row stride ldda) to dc·Wᵀ over W's weight rows for the m
// rows of dc (row stride lddc): the gradient of mul's input a from that
// of its output. With acc it adds.
func (n *trfNet[T]) mulT(w *trfMat[T], m int, dc []T, lddc int, da []T, ldda int, acc bool) {
	n.k.gemmNNP(m, w.s.rows-1, w.cols, dc, lddc, w.pt, da, ldda, acc)
}

// init draws the initial parameters from rng: weights uniform in
// ±1/√fan_in (PyTorch's Linear default), biases 0, layer-norm gains 1,
// the head's weights in ±1/√d and its biases those of
// outHead.initBias.
func (n *trfNet[T]) init(rng *rand.PCG) {
	gains := map[int]bool{n.lnfg.off: true}
	for _, b := range n.blocks {
		gains[b.ln1g.off], gains[b.ln2g.off] = true, true
	}
	for _, s := range n.mats {
		b := n.initUniform(rng, s, 1/math.Sqrt(float64(max(s.rows-1, 1))))
		switch {
		case s == n.head:
			n.initBias(b)
		case gains[s.off]:
			for j := range b {
				b[j] = 1
			}
		default:
			clear(b)
		}
	}
	n.resetOptimizer()
	n.pack()
}

// trfLayerBufs holds one block's activations. The block reads X, P rows
// of d; its queries are all P rows, or for the last block one row per
// window (m rows).
type trfLayerBufs[T float] struct {
	x       []T // P×d block input X_l
	a       []T // P×(d+1) [LN_1(X_l) | 1]
	xh1     []T // P×d normalised X_l before the gain
	rs1     []T // P reciprocal standard deviations of X_l's rows
	qkv     []T // P×3d [Q | K | V]; Q only on query rows
	probs   []T // training: per window and head the m/B×L attention weights
	o       []T // m×(d+1) [attention output | 1]
	h       []T // m×d H
	c       []T // m×(d+1) [LN_2(H) | 1]
	xh2     []T // m×d normalised H
	rs2     []T // m
	u       []T // m×ff feed-forward pre-activations
	tg      []T // m×ff tanh inside the GELU
	f       []T // m×(ff+1) [GELU(u) | 1]
	queries int // m
}

// trfBufs is the scratch of one pass over a batch of rows (windows).
// Training buffers keep every block's activations for backward;
// forecasting buffers share them between blocks, all but the inputs X_l.
type trfBufs[T float] struct {
	rowBufs[T]
	sh    shape
	ff    int
	train bool

	x    []T // P×(features+1) [input features | 1]
	lay  []trfLayerBufs[T]
	out  []T // B×d output of the last block
	xhf  []T // B×d normalised output
	rsf  []T // B
	attn []T // L×L attention weights (forecasting) or their gradient (training) of one window and head

	// Training: gradients of a block's output and input (P×d each, in
	// turn), of the final layer norm's input (B×d) and the block's
	// intermediates.
	dx       [2][]T
	dz       []T
	dqkv, da []T // P×3d, P×d
	dh, dc   []T // m×d
	do       []T // m×d
	df       []T // m×ff
}

func (n *trfNet[T]) newBufs(rows int, train bool) *trfBufs[T] {
	sh := n.sh
	L, d, ff, nf, nl := sh.window, sh.hidden, n.ff, sh.features, sh.layers
	P := rows * L
	bf := &trfBufs[T]{
		rowBufs: newRowBufs[T](sh, rows, train),
		sh:      sh, ff: ff, train: train,
		x:   make([]T, P*(nf+1)),
		lay: make([]trfLayerBufs[T], nl),
		out: make([]T, rows*d), xhf: make([]T, rows*d), rsf: make([]T, rows),
		attn: make([]T, L*L),
	}
	setCol(bf.x, nf+1, nf)
	for l := range bf.lay {
		lb := &bf.lay[l]
		m := P
		if l == nl-1 {
			m = rows
		}
		lb.queries = m
		lb.x = make([]T, P*d)
		if l > 0 && !train {
			// Forecasting: share the first block's intermediates, which
			// are at least as large.
			x := lb.x
			*lb = bf.lay[0]
			lb.x, lb.queries = x, m
			continue
		}
		lb.a, lb.xh1, lb.rs1 = make([]T, P*(d+1)), make([]T, P*d), make([]T, P)
		lb.qkv = make([]T, P*3*d)
		lb.o, lb.h, lb.c = make([]T, m*(d+1)), make([]T, m*d), make([]T, m*(d+1))
		lb.xh2, lb.rs2 = make([]T, m*d), make([]T, m)
		lb.u, lb.tg, lb.f = make([]T, m*ff), make([]T, m*ff), make([]T, m*(ff+1))
		setCol(lb.a, d+1, d)
		setCol(lb.o, d+1, d)
		setCol(lb.c, d+1, d)
		setCol(lb.f, ff+1, ff)
		if train {
			lb.probs = make([]T, m*sh.heads*L)
		}
	}
	if train {
		bf.dx = [2][]T{make([]T, P*d), make([]T, P*d)}
		bf.dz = make([]T, rows*d)
		bf.dqkv, bf.da = make([]T, P*3*d), make([]T, P*d)
		m := bf.lay[0].queries
		bf.dh, bf.dc, bf.do = make([]T, m*d), make([]T, m*d), make([]T, m*d)
		bf.df = make([]T, m*ff)
	}
	bf.rows = rows
	return bf
}

// setRows lays the buffers out for a pass over rows ≤ cap windows; the
// matrices keep their row strides, so only the number of rows changes.
func (bf *trfBufs[T]) setRows(rows int) {
	if rows > bf.cap {
		panic("model: transformer buffers too small")
	}
	bf.rows = rows
}

// featureDst returns where the features of window r go: its L rows of x.
func (bf *trfBufs[T]) featureDst(r int) (x []T, ld, row, rows int) {
	ld = bf.sh.features + 1
	return bf.x[r*bf.sh.window*ld:], ld, 0, 1
}

// queryRows returns the number of query rows of block l for B windows,
// the step of the first query of a window and the distance between query
// rows, in rows of the position matrices: every step of every window, or
// in the last block the last step of each.
func (n *trfNet[T]) queryRows(l, B int) (m, t0, st int) {
	if l == n.sh.layers-1 {
		return B, n.sh.window - 1, n.sh.window
	}
	return B * n.sh.window, 0, 1
}

// forward runs the network over the windows in bf and leaves the head
// pre-activations in bf.out.
func (n *trfNet[T]) forward(bf *trfBufs[T]) {
	sh := n.sh
	B, L, d, nf := bf.rows, sh.window, sh.hidden, sh.features
	P := B * L
	x0 := bf.lay[0].x
	n.mul(&n.win, P, bf.x, nf+1, x0, d, false)
	for r := range B {
		for t := range L {
			row, pe := x0[(r*L+t)*d:][:d], n.pe[t*d:][:d]
			for j, v := range pe {
				row[j] += v
			}
		}
	}
	for l := range n.blocks {
		n.blockForward(bf, l)
	}
	n.layerNorm(bf.out, d, B, n.of(n.params, n.lnfg), n.of(n.params, n.lnfb), bf.head, d+1, bf.xhf, bf.rsf)
	n.outHead.forward(&bf.rowBufs, n.wo)
}

// blockForward runs block l: its input is bf.lay[l].x, its output the
// next block's input or bf.out.
func (n *trfNet[T]) blockForward(bf *trfBufs[T], l int) {
	sh, blk, lb := n.sh, &n.blocks[l], &bf.lay[l]
	B, L, d, ff := bf.rows, sh.window, sh.hidden, n.ff
	P := B * L
	m, t0, st := n.queryRows(l, B)
	p := n.params
	n.layerNorm(lb.x, d, P, n.of(p, blk.ln1g), n.of(p, blk.ln1b), lb.a, d+1, lb.xh1, lb.rs1)
	// Keys and values at every step, queries at the query rows.
	n.mul(&blk.kv, P, lb.a, d+1, lb.qkv[d:], 3*d, false)
	n.mul(&blk.q, m, lb.a[t0*(d+1):], (d+1)*st, lb.qkv[t0*3*d:], 3*d*st, false)
	n.attention(bf, l)
	// H = X at the query rows + [O | 1]·Wo.
	copyRows(lb.h, d, lb.x[t0*d:], d*st, m, d)
	n.mul(&blk.wo, m, lb.o, d+1, lb.h, d, true)
	n.layerNorm(lb.h, d, m, n.of(p, blk.ln2g), n.of(p, blk.ln2b), lb.c, d+1, lb.xh2, lb.rs2)
	n.mul(&blk.w1, m, lb.c, d+1, lb.u, ff, false)
	n.gelu(lb.u, lb.tg, lb.f, m)
	next := bf.out
	if l+1 < sh.layers {
		next = bf.lay[l+1].x
	}
	copy(next[:m*d], lb.h[:m*d])
	n.mul(&blk.w2, m, lb.f, ff+1, next, d, true)
}

// attnDims returns the dimensions of block l's attention over the batch
// in bf: windows, steps, model and head width, heads, the first query
// step and the queries of a window, and the scale 1/√dh of the scores.
func (n *trfNet[T]) attnDims(bf *trfBufs[T], l int) (B, L, d, dh, heads, t0, nq int, inv T) {
	B, L, d, dh, heads = bf.rows, n.sh.window, n.sh.hidden, n.dh, n.sh.heads
	_, t0, _ = n.queryRows(l, B)
	return B, L, d, dh, heads, t0, L - t0, T(1 / math.Sqrt(float64(dh)))
}

// attention computes the attention output of block l at its query rows
// into bf.lay[l].o, window by window and head by head, keeping the
// weights for backward in training.
func (n *trfNet[T]) attention(bf *trfBufs[T], l int) {
	k, lb := n.k, &bf.lay[l]
	B, L, d, dh, heads, t0, nq, inv := n.attnDims(bf, l)
	for r := range B {
		qkv := lb.qkv[r*L*3*d:]
		pad := int(bf.pad[r])
		for h := range heads {
			s := bf.attn[:nq*L]
			if bf.train {
				s = lb.probs[(r*heads+h)*nq*L:][:nq*L]
			}
			k.gemmNT(nq, L, dh, qkv[t0*3*d+h*dh:], 3*d, qkv[d+h*dh:], 3*d, s, L, false)
			for i := range nq {
				t, row := t0+i, s[i*L:(i+1)*L]
				if t < pad {
					clear(row)
					continue
				}
				seg := row[pad : t+1]
				k.scale(inv, seg)
				k.softmax(seg)
				clear(row[:pad])
				clear(row[t+1:])
			}
			k.gemmNN(nq, dh, L, s, L, qkv[2*d+h*dh:], 3*d, lb.o[r*nq*(d+1)+h*dh:], d+1, false)
		}
	}
}

// copyRows copies m rows of n elements from src (row stride lds) to dst
// (row stride ldd).
func copyRows[T float](dst []T, ldd int, src []T, lds, m, n int) {
	for i := range m {
		copy(dst[i*ldd:i*ldd+n], src[i*lds:i*lds+n])
	}
}

// layerNorm sets row i of y (row stride ldy) to the layer norm of row i
// of x (m rows of d, row stride ldx) with gains g and biases b, and keeps
// the normalised rows in xh (m×d) and the reciprocal standard deviations
// in rs for backward.
func (n *trfNet[T]) layerNorm(x []T, ldx, m int, g, b, y []T, ldy int, xh, rs []T) {
	d := len(g)
	for i := range m {
		rs[i] = n.k.layerNorm(x[i*ldx:][:d], g, b, y[i*ldy:][:d], xh[i*d:][:d], lnEps)
	}
}

// layerNormBack takes the gradient dy (m×d, row stride ldy) of a layer
// norm's output, adds that of its gains and biases to dg and db and that
// of its input to dx (row stride ldx), or writes it there without acc.
func (n *trfNet[T]) layerNormBack(dy []T, ldy, m int, g, xh, rs, dg, db, dx []T, ldx int, acc bool) {
	d := len(g)
	for i := range m {
		dxi := dx[i*ldx:][:d]
		if !acc {
			clear(dxi)
		}
		n.k.layerNormBack(dy[i*ldy:][:d], g, xh[i*d:][:d], dg, db, dxi, rs[i])
	}
}

// gelu sets f (row stride ff+1) to GELU(u) for m rows of ff, keeping in tg
// the tanh values the backward pass reads.
func (n *trfNet[T]) gelu(u, tg, f []T, m int) {
	ff := n.ff
	for i := range m {
		n.k.gelu(f[i*(ff+1):][:ff], tg[i*ff:][:ff], u[i*ff:][:ff])
	}
}

// backward backpropagates the head gradient in bf.out through the network
// and writes the parameter gradients.
func (n *trfNet[T]) backward(bf *trfBufs[T]) {
	sh, k := n.sh, n.k
	B, L, d, nf := bf.rows, sh.window, sh.hidden, sh.features
	P := B * L
	p, gr := n.params, n.grads
	n.outHead.backward(&bf.rowBufs, n.wo, n.dwo, bf.dz, d)
	dlg, dlb := n.of(gr, n.lnfg), n.of(gr, n.lnfb)
	clear(dlg)
	clear(dlb)
	dy := bf.dx[0]
	n.layerNormBack(bf.dz, d, B, n.of(p, n.lnfg), bf.xhf, bf.rsf, dlg, dlb, dy, d, false)
	for l := sh.layers - 1; l >= 0; l-- {
		dx := bf.dx[(sh.layers-l)%2]
		n.blockBackward(bf, l, dy, dx)
		dy = dx
	}
	k.gemmTN(nf+1, d, P, bf.x, nf+1, dy, d, n.of(gr, n.win.s), d, false)
}

// blockBackward takes the gradient dy of block l's output (at its query
// rows) and writes that of its input X_l to dx (P×d) and those of its
// parameters.
func (n *trfNet[T]) blockBackward(bf *trfBufs[T], l int, dy, dx []T) {
	sh, k, blk, lb := n.sh, n.k, &n.blocks[l], &bf.lay[l]
	B, L, d, ff := bf.rows, sh.window, sh.hidden, n.ff
	P := B * L
	m, t0, st := n.queryRows(l, B)
	p, gr := n.params, n.grads
	// Feed-forward: X_{l+1} = H + [F | 1]·W2, F = GELU([C | 1]·W1).
	k.gemmTN(ff+1, d, m, lb.f, ff+1, dy, d, n.of(gr, blk.w2.s), d, false)
	n.mulT(&blk.w2, m, dy, d, bf.df, ff, false)
	k.geluBack(bf.df[:m*ff], lb.u, lb.tg)
	k.gemmTN(d+1, ff, m, lb.c, d+1, bf.df, ff, n.of(gr, blk.w1.s), ff, false)
	n.mulT(&blk.w1, m, bf.df, ff, bf.dc, d, false)
	copy(bf.dh[:m*d], dy[:m*d])
	dg, db := n.of(gr, blk.ln2g), n.of(gr, blk.ln2b)
	clear(dg)
	clear(db)
	n.layerNormBack(bf.dc, d, m, n.of(p, blk.ln2g), lb.xh2, lb.rs2, dg, db, bf.dh, d, true)
	// Attention output: H = X at the query rows + [O | 1]·Wo.
	k.gemmTN(d+1, d, m, lb.o, d+1, bf.dh, d, n.of(gr, blk.wo.s), d, false)
	n.mulT(&blk.wo, m, bf.dh, d, bf.do, d, false)
	if t0 > 0 {
		clear(dx[:P*d])
	}
	copyRows(dx[t0*d:], d*st, bf.dh, d, m, d)
	n.attentionBack(bf, l)
	// Projections: [Q | K | V] = [LN_1(X) | 1]·Wqkv, queries at the query rows.
	dwqkv := n.of(gr, blk.q.s)
	k.gemmTN(d+1, 2*d, P, lb.a, d+1, bf.dqkv[d:], 3*d, dwqkv[d:], 3*d, false)
	k.gemmTN(d+1, d, m, lb.a[t0*(d+1):], (d+1)*st, bf.dqkv[t0*3*d:], 3*d*st, dwqkv, 3*d, false)
	n.mulT(&blk.kv, P, bf.dqkv[d:], 3*d, bf.da, d, false)
	n.mulT(&blk.q, m, bf.dqkv[t0*3*d:], 3*d*st, bf.da[t0*d:], d*st, true)
	dg, db = n.of(gr, blk.ln1g), n.of(gr, blk.ln1b)
	clear(dg)
	clear(db)
	n.layerNormBack(bf.da, d, P, n.of(p, blk.ln1g), lb.xh1, lb.rs1, dg, db, dx, d, true)
}

// attentionBack takes the gradient of block l's attention output in
// bf.do and writes those of its queries, keys and values to bf.dqkv,
// window by window and head by head (queries at the query rows only).
// With the weights A of a head and dA = dO·Vᵀ, the gradient of the
// scaled scores is A⊙(dA − rowsum(A⊙dA)).
func (n *trfNet[T]) attentionBack(bf *trfBufs[T], l int) {
	k, lb := n.k, &bf.lay[l]
	B, L, d, dh, heads, t0, nq, inv := n.attnDims(bf, l)
	for r := range B {
		qkv, dqkv := lb.qkv[r*L*3*d:], bf.dqkv[r*L*3*d:]
		do := bf.do[r*nq*d:]
		for h := range heads {
			a := lb.probs[(r*heads+h)*nq*L:][:nq*L]
			ds := bf.attn[:nq*L]
			k.gemmNT(nq, L, dh, do[h*dh:], d, qkv[2*d+h*dh:], 3*d, ds, L, false)
			k.gemmTN(L, dh, nq, a, L, do[h*dh:], d, dqkv[2*d+h*dh:], 3*d, false)
			for i := range nq {
				ai, di := a[i*L:(i+1)*L], ds[i*L:(i+1)*L]
				var s T
				for j, v := range ai {
					s += v * di[j]
				}
				for j, v := range ai {
					di[j] = v * (di[j] - s) * inv
				}
			}
			k.gemmNN(nq, dh, L, ds, L, qkv[d+h*dh:], 3*d, dqkv[t0*3*d+h*dh:], 3*d, false)
			k.gemmTN(L, dh, nq, ds, L, qkv[t0*3*d+h*dh:], 3*d, dqkv[d+h*dh:], 3*d, false)
		}
	}
}
