package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genTrf emits the elementwise kernels of the Transformer: GELU forward
// and backward, a row of a layer norm forward and backward, and the
// maximum of a vector (for softmax).
func genTrf() {
	genGELU()
	genLayerNorm()
	genMax()
}

// vectorLoops emits the loop over n vectors, two at a time and then one,
// body(L) handling L of them and the registers in ptrs advancing by L
// vectors' bytes, and returns.
func vectorLoops(n Register, body func(L int), ptrs ...Register) {
	for _, L := range []int{2, 1} {
		loop, next := fmt.Sprintf("loop%d", L), fmt.Sprintf("after%d", L)
		Label(loop)
		CMPQ(n, U8(L))
		JL(LabelRef(next))
		body(L)
		for _, p := range ptrs {
			ADDQ(U32(32*L), p)
		}
		SUBQ(U8(L), n)
		JMP(LabelRef(loop))
		Label(next)
	}
	VZEROUPPER()
	RET()
}

// geluArg returns c·v·(1 + a·v²), the argument of the tanh of GELU.
func geluArg(v []VecVirtual) []VecVirtual {
	w := regs(len(v))
	for l := range v {
		VMULPS(v[l], v[l], w[l])
		VMULPS(KC("gelua"), w[l], w[l])
		VADDPS(KC("one"), w[l], w[l])
		VMULPS(v[l], w[l], w[l])
		VMULPS(KC("geluc"), w[l], w[l])
	}
	return w
}

func genGELU() {
	TEXT("gelu32", NOSPLIT, "func(f, t, u *float32, n int)")
	Pragma("noescape")
	Doc("gelu32 sets t[i] = tanh(c*u[i]*(1+a*u[i]^2)) and f[i] = 0.5*u[i]*(1+t[i]) for i < n,",
		"the tanh approximation of GELU; n must be a multiple of 8.")
	{
		f := Load(Param("f"), GP64())
		t := Load(Param("t"), GP64())
		u := Load(Param("u"), GP64())
		n := Load(Param("n"), GP64())
		SHRQ(U8(3), n)
		vectorLoops(n, func(L int) {
			v := regs(L)
			for l := range v {
				VMOVUPS(Mem{Base: u, Disp: 32 * l}, v[l])
			}
			th := tanhVec(geluArg(v))
			for l := range v {
				VMOVUPS(th[l], Mem{Base: t, Disp: 32 * l})
				VADDPS(KC("one"), th[l], th[l])
				VMULPS(KC("half"), v[l], v[l])
				VMULPS(th[l], v[l], v[l])
				VMOVUPS(v[l], Mem{Base: f, Disp: 32 * l})
			}
		}, f, t, u)
	}

	TEXT("geluBack32", NOSPLIT, "func(df, u, t *float32, n int)")
	Pragma("noescape")
	Doc("geluBack32 sets df[i] *= 0.5*(1+t[i]) + 0.5*u[i]*(1-t[i]^2)*c*(1+3*a*u[i]^2) for",
		"i < n, with t from gelu32; n must be a multiple of 8.")
	{
		df := Load(Param("df"), GP64())
		u := Load(Param("u"), GP64())
		t := Load(Param("t"), GP64())
		n := Load(Param("n"), GP64())
		SHRQ(U8(3), n)
		vectorLoops(n, func(L int) {
			for l := 0; l < L; l++ {
				v, tv, q, p := YMM(), YMM(), YMM(), YMM()
				VMOVUPS(Mem{Base: u, Disp: 32 * l}, v)
				VMOVUPS(Mem{Base: t, Disp: 32 * l}, tv)
				VMULPS(v, v, q)
				VMULPS(KC("gelua3"), q, q)
				VADDPS(KC("one"), q, q) // 1 + 3a·u²
				VMULPS(KC("geluc"), q, q)
				VMOVAPS(tv, p)
				VFNMADD213PS(KC("one"), tv, p) // 1 - t²
				VMULPS(p, q, q)
				VMULPS(v, q, q)
				VADDPS(KC("one"), tv, p)
				VADDPS(p, q, q)
				VMULPS(KC("half"), q, q)
				VMULPS(Mem{Base: df, Disp: 32 * l}, q, q)
				VMOVUPS(q, Mem{Base: df, Disp: 32 * l})
			}
		}, df, u, t)
	}
}

// hsum returns the sum of the 8 lanes of v in the low lane of its XMM
// register; v is consumed.
func hsum(v VecVirtual) Register { return hreduce(v, VADDPS, VADDSS) }

// hreduce reduces the 8 lanes of v with the vector and scalar forms of an
// operation (lanes 0-3 with 4-7, then pairs, then the last two) and
// returns the result in the low lane of v's XMM register; v is consumed.
func hreduce(v VecVirtual, vop, sop func(...Op)) Register {
	hi := XMM()
	VEXTRACTF128(U8(1), v, hi)
	lo := v.AsX()
	vop(hi, lo, lo)
	VMOVHLPS(lo, hi, hi)
	vop(hi, lo, lo)
	VMOVSHDUP(lo, hi)
	sop(hi, lo, lo)
	return lo
}

// broadcast returns a vector of 8 copies of the low lane of s.
func broadcast(s Register) VecVirtual {
	v := YMM()
	VBROADCASTSS(s, v)
	return v
}

// rowLoop emits a loop over the nv vectors of a row, body reading and
// writing the current vector through at(p); i and cnt are scratch.
func rowLoop(name string, i, cnt, nv Register, body func(at func(Register) Mem)) {
	XORQ(i, i)
	MOVQ(nv, cnt)
	Label(name)
	body(func(p Register) Mem { return Mem{Base: p, Index: i, Scale: 4} })
	ADDQ(U8(8), i)
	DECQ(cnt)
	JNZ(LabelRef(name))
}

func genLayerNorm() {
	TEXT("layerNormRow32", NOSPLIT, "func(x, y, xh, gain, bias *float32, n int, invn, eps float32) float32")
	Pragma("noescape")
	Doc("layerNormRow32 normalises the row x of n elements (a positive multiple of 8) with",
		"its mean m and variance v: r = 1/sqrt(v+eps), xh = (x-m)*r, y = xh*gain + bias. It",
		"returns r; invn is 1/n. (The assembler reserves the names g and b.)")
	{
		x := Load(Param("x"), GP64())
		y := Load(Param("y"), GP64())
		xh := Load(Param("xh"), GP64())
		g := Load(Param("gain"), GP64())
		b := Load(Param("bias"), GP64())
		nv := Load(Param("n"), GP64())
		SHRQ(U8(3), nv)
		invn := Load(Param("invn"), XMM())
		eps := Load(Param("eps"), XMM())
		i, cnt := GP64(), GP64()
		sum := YMM()
		VXORPS(sum, sum, sum)
		rowLoop("mean", i, cnt, nv, func(at func(Register) Mem) { VADDPS(at(x), sum, sum) })
		m := hsum(sum)
		VMULSS(invn, m, m)
		mv := broadcast(m)
		sq := YMM()
		VXORPS(sq, sq, sq)
		rowLoop("var", i, cnt, nv, func(at func(Register) Mem) {
			d := YMM()
			VMOVUPS(at(x), d)
			VSUBPS(mv, d, d)
			VFMADD231PS(d, d, sq)
		})
		v := hsum(sq)
		VMULSS(invn, v, v)
		VADDSS(eps, v, v)
		VSQRTSS(v, v, v)
		r := XMM()
		VMOVSS(KC("one"), r)
		VDIVSS(v, r, r)
		rv := broadcast(r)
		rowLoop("norm", i, cnt, nv, func(at func(Register) Mem) {
			d, gv := YMM(), YMM()
			VMOVUPS(at(x), d)
			VSUBPS(mv, d, d)
			VMULPS(rv, d, d)
			VMOVUPS(d, at(xh))
			VMOVUPS(at(g), gv)
			VFMADD213PS(at(b), gv, d) // d = d*g + b
			VMOVUPS(d, at(y))
		})
		Store(r, ReturnIndex(0))
		VZEROUPPER()
		RET()
	}

	TEXT("layerNormBackRow32", NOSPLIT, "func(dy, gain, xh, dg, db, dx *float32, n int, r, invn float32)")
	Pragma("noescape")
	Doc("layerNormBackRow32 adds the gradients of a layer norm row (see layerNormRow32) from",
		"the output gradient dy: dg += dy*xh, db += dy and dx += r*(dy*gain - mean(dy*gain) -",
		"xh*mean(dy*gain*xh)), over n elements (a positive multiple of 8); invn is 1/n.")
	{
		dy := Load(Param("dy"), GP64())
		g := Load(Param("gain"), GP64())
		xh := Load(Param("xh"), GP64())
		dg := Load(Param("dg"), GP64())
		db := Load(Param("db"), GP64())
		dx := Load(Param("dx"), GP64())
		nv := Load(Param("n"), GP64())
		SHRQ(U8(3), nv)
		r := Load(Param("r"), XMM())
		invn := Load(Param("invn"), XMM())
		i, cnt := GP64(), GP64()
		s1, s2 := YMM(), YMM()
		VXORPS(s1, s1, s1)
		VXORPS(s2, s2, s2)
		rowLoop("sums", i, cnt, nv, func(at func(Register) Mem) {
			dv, h, t, gh := YMM(), YMM(), YMM(), YMM()
			VMOVUPS(at(dy), dv)
			VMOVUPS(at(xh), h)
			VMOVUPS(at(dg), t)
			VFMADD231PS(h, dv, t)
			VMOVUPS(t, at(dg))
			VADDPS(at(db), dv, t)
			VMOVUPS(t, at(db))
			VMULPS(at(g), dv, gh)
			VADDPS(gh, s1, s1)
			VFMADD231PS(h, gh, s2)
		})
		a := hsum(s1)
		VMULSS(invn, a, a)
		av := broadcast(a)
		c := hsum(s2)
		VMULSS(invn, c, c)
		cv := broadcast(c)
		rv := broadcast(r)
		rowLoop("dx", i, cnt, nv, func(at func(Register) Mem) {
			gh, h, t := YMM(), YMM(), YMM()
			VMOVUPS(at(dy), gh)
			VMULPS(at(g), gh, gh)
			VSUBPS(av, gh, gh)
			VMOVUPS(at(xh), h)
			VFNMADD231PS(cv, h, gh) // gh -= xh*mean(dy*g*xh)
			VMOVUPS(at(dx), t)
			VFMADD231PS(rv, gh, t)
			VMOVUPS(t, at(dx))
		})
		VZEROUPPER()
		RET()
	}
}

func genMax() {
	TEXT("max32", NOSPLIT, "func(x *float32, n int) float32")
	Pragma("noescape")
	Doc("max32 returns the largest x[i] for i < n, a positive multiple of 8 (NaN is not",
		"propagated).")
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	SHRQ(U8(3), n)
	m := YMM()
	VMOVUPS(Mem{Base: x}, m)
	ADDQ(U8(32), x)
	DECQ(n)
	JZ(LabelRef("done"))
	Label("loop")
	VMAXPS(Mem{Base: x}, m, m)
	ADDQ(U8(32), x)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	Store(hreduce(m, VMAXPS, VMAXSS), ReturnIndex(0))
	VZEROUPPER()
	RET()
}
