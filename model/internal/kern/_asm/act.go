package main

import (
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
	vectorLoops(n, func(L int) {
		v := regs(L)
		for l := range v {
			VMOVUPS(Mem{Base: x, Disp: 32 * l}, v[l])
		}
		r := f(v)
		for l := range r {
			VMOVUPS(r[l], Mem{Base: dst, Disp: 32 * l})
		}
	}, x, dst)
}

func genAct() {
	genUnary("sigmoid32", "sigmoid32 sets dst[i] = 1/(1+exp(-x[i])) for i < n; n must be a multiple of 8.", sigmoidVec)
	genUnary("tanh32", "tanh32 sets dst[i] = tanh(x[i]) for i < n; n must be a multiple of 8.", tanhVec)
}

// Cell activations (lstmFwdRow32). They trade the saturation guarantees of
// sigmoidVec/tanhVec for shorter dependency chains:
//
//	sigmoid(x) = 1/(1 + exp(-y)),  y = clamp(x, -87, 87)
//	tanh(x)    = sign(x) * |expm1(-a)/(2 + expm1(-a))|,  a = min(2|x|, 87)
//
// exp and expm1 share one range reduction (n = round(-t*log2(e)), r = -t -
// n*ln2 in two pieces) and one polynomial expm1(r) = r + r²·P(r), P the
// degree-5 Cephes polynomial evaluated by Estrin's scheme; then with
// s = 2^n, exp(-t) = s*expm1(r) + s and expm1(-t) = s*expm1(r) + (s-1).
// The clamps keep 2^n normal, so no flush is needed; they take the input
// as the second operand of VMAXPS/VMINPS, which returns it when it is NaN,
// so NaN propagates.

// cellExpParts returns s = 2^n and pm = expm1(r) for exp(-t) = s*(1+pm).
// t is consumed.
func cellExpParts(t []VecVirtual) (s, pm []VecVirtual) {
	L := len(t)
	kf := regs(L)
	for l := 0; l < L; l++ {
		VMOVUPS(KC("magic"), kf[l])
		VFMADD231PS(KC("nlog2e"), t[l], kf[l]) // kf = -t*log2e + magic
	}
	n := regs(L)
	for l := 0; l < L; l++ {
		VSUBPS(KC("magic"), kf[l], n[l])
	}
	r := t
	for l := 0; l < L; l++ {
		VFNMSUB231PS(KC("ln2hi"), n[l], r[l]) // r = -(n*ln2hi) - t
	}
	for l := 0; l < L; l++ {
		VFNMADD231PS(KC("ln2lo"), n[l], r[l]) // r = -(n*ln2lo) + r
	}
	r2 := n // n is dead
	for l := 0; l < L; l++ {
		VMULPS(r[l], r[l], r2[l])
	}
	// P(r) = (e5 + e4 r) + r²(e3 + e2 r) + r⁴(e1 + e0 r)
	A, B, C := regs(L), regs(L), regs(L)
	for l := 0; l < L; l++ {
		VMOVUPS(KC("e4"), A[l])
		VFMADD213PS(KC("e5"), r[l], A[l])
		VMOVUPS(KC("e2"), B[l])
		VFMADD213PS(KC("e3"), r[l], B[l])
		VMOVUPS(KC("e0"), C[l])
		VFMADD213PS(KC("e1"), r[l], C[l])
	}
	for l := 0; l < L; l++ {
		VFMADD231PS(B[l], r2[l], A[l]) // A += r²·B
	}
	r4 := B
	for l := 0; l < L; l++ {
		VMULPS(r2[l], r2[l], r4[l])
	}
	for l := 0; l < L; l++ {
		VFMADD231PS(C[l], r4[l], A[l]) // P = A + r⁴·C
	}
	for l := 0; l < L; l++ {
		VFMADD213PS(r[l], r2[l], A[l]) // pm = P·r² + r
	}
	for l := 0; l < L; l++ {
		VPSLLD(U8(23), kf[l], kf[l]) // 2^n
	}
	return kf, A
}

// cellSigmoid returns sigmoid(x) per lane. x is not modified.
func cellSigmoid(x []VecVirtual) []VecVirtual {
	L := len(x)
	y := regs(L)
	for l := 0; l < L; l++ {
		VMOVUPS(KC("ncut"), y[l])
		VMAXPS(x[l], y[l], y[l]) // NaN x -> x
	}
	for l := 0; l < L; l++ {
		c := YMM()
		VMOVUPS(KC("pcut"), c)
		VMINPS(y[l], c, y[l])
	}
	s, pm := cellExpParts(y)
	d := regs(L)
	for l := 0; l < L; l++ {
		VADDPS(KC("one"), s[l], d[l]) // s + 1
	}
	for l := 0; l < L; l++ {
		VFMADD231PS(s[l], pm[l], d[l]) // 1 + exp(-y) = s*pm + (s + 1)
	}
	res := s // dead
	for l := 0; l < L; l++ {
		VMOVUPS(KC("one"), res[l])
		VDIVPS(d[l], res[l], res[l])
	}
	return res
}

// cellTanh returns tanh(x) per lane. x is not modified.
func cellTanh(x []VecVirtual) []VecVirtual {
	L := len(x)
	a := regs(L)
	for l := 0; l < L; l++ {
		VANDPS(KC("abs"), x[l], a[l])
	}
	for l := 0; l < L; l++ {
		VADDPS(a[l], a[l], a[l])
	}
	for l := 0; l < L; l++ {
		c := YMM()
		VMOVUPS(KC("pcut"), c)
		VMINPS(a[l], c, a[l]) // NaN a -> a
	}
	s, pm := cellExpParts(a)
	sm1, sp1 := regs(L), regs(L)
	for l := 0; l < L; l++ {
		VSUBPS(KC("one"), s[l], sm1[l])
		VADDPS(KC("one"), s[l], sp1[l])
	}
	for l := 0; l < L; l++ {
		VFMADD231PS(s[l], pm[l], sm1[l]) // em = expm1(-a) = s*pm + (s-1)
		VFMADD231PS(s[l], pm[l], sp1[l]) // 2 + em
	}
	for l := 0; l < L; l++ {
		VDIVPS(sp1[l], sm1[l], sm1[l]) // em/(2+em) = -tanh(a/2)
	}
	res := s
	for l := 0; l < L; l++ {
		VANDPS(KC("abs"), sm1[l], sm1[l])
		VANDPS(KC("sign"), x[l], res[l])
		VORPS(sm1[l], res[l], res[l])
	}
	return res
}
