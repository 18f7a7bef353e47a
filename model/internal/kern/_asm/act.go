package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Comparison predicates for VCMPPS.
const (
	cmpLTOQ = 0x11
	cmpGTOQ = 0x1e
)

// The vector math below works on "lanes": several independent vectors whose
// instructions are emitted interleaved, step by step, so that the long
// dependency chains of exp overlap even within the small FP scheduler
// window of the CPU.

func regs(n int) []VecVirtual {
	r := make([]VecVirtual, n)
	for i := range r {
		r[i] = YMM()
	}
	return r
}

// expNeg returns exp(-t) for t >= 0 (or NaN, which propagates). Lanes with
// t > 87.3 (where the result would be subnormal) are flushed to exactly 0,
// which also covers t = +Inf. The arguments are not modified.
//
// Cephes expf: exp(-t) = 2^n * exp(r), n = round(-t*log2(e)),
// r = -t - n*ln2 computed in two pieces, exp(r) by a degree-7 polynomial.
// The rounding uses the 1.5*2^23 trick: kf = -t*log2(e) + (1.5*2^23 + 127)
// rounds to an integer whose low mantissa bits are n+127, so kf<<23 is the
// bit pattern of 2^n.
func expNeg(t []VecVirtual) []VecVirtual {
	L := len(t)
	kf, n, r, p := regs(L), regs(L), regs(L), regs(L)
	for l := 0; l < L; l++ {
		VMOVUPS(KC("magic"), kf[l])
		VFMADD231PS(KC("nlog2e"), t[l], kf[l]) // kf = -t*log2e + magic
	}
	for l := 0; l < L; l++ {
		VSUBPS(KC("magic"), kf[l], n[l]) // n = kf - magic (exact)
	}
	for l := 0; l < L; l++ {
		VMOVAPS(t[l], r[l])
		VFNMSUB231PS(KC("ln2hi"), n[l], r[l]) // r = -(n*ln2hi) - t
	}
	for l := 0; l < L; l++ {
		VFNMADD231PS(KC("ln2lo"), n[l], r[l]) // r = -(n*ln2lo) + r
	}
	for l := 0; l < L; l++ {
		VMOVUPS(KC("e0"), p[l])
	}
	for _, c := range []string{"e1", "e2", "e3", "e4", "e5", "one", "one"} {
		for l := 0; l < L; l++ {
			VFMADD213PS(KC(c), r[l], p[l]) // p = p*r + c
		}
	}
	for l := 0; l < L; l++ {
		VPSLLD(U8(23), kf[l], kf[l]) // 2^n
	}
	for l := 0; l < L; l++ {
		VMULPS(kf[l], p[l], p[l])
	}
	m := n // dead
	for l := 0; l < L; l++ {
		VCMPPS(U8(cmpGTOQ), KC("expcut"), t[l], m[l]) // m = t > cut
	}
	for l := 0; l < L; l++ {
		VANDNPS(p[l], m[l], p[l]) // p = ~m & p
	}
	return p
}

// sigmoidVec returns sigmoid(x) per lane. x is not modified.
func sigmoidVec(x []VecVirtual) []VecVirtual {
	L := len(x)
	ax := regs(L)
	for l := 0; l < L; l++ {
		VANDPS(KC("abs"), x[l], ax[l])
	}
	e := expNeg(ax)
	den := ax // ax is dead after expNeg
	for l := 0; l < L; l++ {
		VADDPS(KC("one"), e[l], den[l])
	}
	d := regs(L)
	for l := 0; l < L; l++ {
		VMOVUPS(KC("one"), d[l])
		VDIVPS(den[l], d[l], d[l]) // d = 1/(1+e)
	}
	for l := 0; l < L; l++ {
		VMULPS(d[l], e[l], e[l]) // e/(1+e)
	}
	res := regs(L)
	for l := 0; l < L; l++ {
		VBLENDVPS(x[l], e[l], d[l], res[l]) // x<0 ? e/(1+e) : 1/(1+e)
	}
	return res
}

// tanhVec returns tanh(x) per lane. x is not modified.
func tanhVec(x []VecVirtual) []VecVirtual {
	L := len(x)
	ax, t2 := regs(L), regs(L)
	for l := 0; l < L; l++ {
		VANDPS(KC("abs"), x[l], ax[l])
	}
	for l := 0; l < L; l++ {
		VADDPS(ax[l], ax[l], t2[l])
	}
	e := expNeg(t2)
	num := t2 // dead after expNeg
	for l := 0; l < L; l++ {
		VMOVUPS(KC("one"), num[l])
		VSUBPS(e[l], num[l], num[l]) // 1 - e
	}
	for l := 0; l < L; l++ {
		VADDPS(KC("one"), e[l], e[l]) // 1 + e
	}
	for l := 0; l < L; l++ {
		VDIVPS(e[l], num[l], num[l]) // big = (1-e)/(1+e) >= 0
	}

	// Small |x|: |x| + |x|*z*P(z), z = x*x.
	z, p := regs(L), regs(L)
	for l := 0; l < L; l++ {
		VMULPS(ax[l], ax[l], z[l])
	}
	for l := 0; l < L; l++ {
		VMOVUPS(KC("t0"), p[l])
	}
	for _, c := range []string{"t1", "t2", "t3", "t4"} {
		for l := 0; l < L; l++ {
			VFMADD213PS(KC(c), z[l], p[l])
		}
	}
	for l := 0; l < L; l++ {
		VMULPS(ax[l], z[l], z[l]) // |x|*z
	}
	small := e // dead
	for l := 0; l < L; l++ {
		VMOVAPS(ax[l], small[l])
		VFMADD231PS(p[l], z[l], small[l]) // |x| + |x|*z*P(z)
	}
	m := p // dead
	for l := 0; l < L; l++ {
		VCMPPS(U8(cmpLTOQ), KC("tcut"), ax[l], m[l])
	}
	res := regs(L)
	for l := 0; l < L; l++ {
		VBLENDVPS(m[l], small[l], num[l], res[l])
	}
	sg := z
	for l := 0; l < L; l++ {
		VANDPS(KC("sign"), x[l], sg[l])
	}
	for l := 0; l < L; l++ {
		VORPS(sg[l], res[l], res[l])
	}
	return res
}

// genUnary emits func name(dst, x *float32, n int) for n a multiple of 8,
// two vectors per iteration.
func genUnary(name, doc string, f func([]VecVirtual) []VecVirtual) {
	TEXT(name, NOSPLIT, "func(dst, x *float32, n int)")
	Pragma("noescape")
	Doc(doc)
	dst := Load(Param("dst"), GP64())
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	SHRQ(U8(3), n)
	for _, L := range []int{2, 1} {
		loop := fmt.Sprintf("loop%d", L)
		next := fmt.Sprintf("after%d", L)
		Label(loop)
		CMPQ(n, U8(L))
		JL(LabelRef(next))
		v := regs(L)
		for l := range v {
			VMOVUPS(Mem{Base: x, Disp: 32 * l}, v[l])
		}
		r := f(v)
		for l := range r {
			VMOVUPS(r[l], Mem{Base: dst, Disp: 32 * l})
		}
		ADDQ(U8(32*L), x)
		ADDQ(U8(32*L), dst)
		SUBQ(U8(L), n)
		JMP(LabelRef(loop))
		Label(next)
	}
	VZEROUPPER()
	RET()
}

func genAct() {
	genUnary("sigmoid32", "sigmoid32 sets dst[i] = 1/(1+exp(-x[i])) for i < n; n must be a multiple of 8.", sigmoidVec)
	genUnary("tanh32", "tanh32 sets dst[i] = tanh(x[i]) for i < n; n must be a multiple of 8.", tanhVec)
}
