package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genGRU emits the per-row fused GRU cell kernels. Each call handles nv*8
// columns of one batch row; z/gates point at the row's n_x block and the
// r, u, n_h blocks follow at hid, 2*hid, 3*hid elements. hPrev, h and h2
// (and dh, dc, dcPrev backward) are the row's hidden vectors.
func genGRU() {
	TEXT("gruFwdRow32", NOSPLIT, "func(z, gates, hPrev, h, h2 *float32, hid, nv int)")
	Pragma("noescape")
	Doc("gruFwdRow32 is the forward GRU cell for nv*8 columns of one row: it reads the",
		"pre-activations at z and writes the gates at gates (which may equal z) and h",
		"at both h and h2 (either may equal hPrev).")
	{
		z := Load(Param("z"), GP64())
		gp := Load(Param("gates"), GP64())
		hp := Load(Param("hPrev"), GP64())
		h := Load(Param("h"), GP64())
		h2 := Load(Param("h2"), GP64())
		rc := newRowCell()
		gate, st := rc.gate, rc.state
		rc.loops(func(L int) {
			rc.activate(z, gp, 1, L, cellSigmoid) // r
			rc.activate(z, gp, 2, L, cellSigmoid) // u
			// n = tanh(n_x + r*n_h); n_h is copied to gates first, since
			// the n store may not precede the n_h load when gates == z.
			a := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(gate(z, 3, l), a[l])
				VMOVUPS(a[l], gate(gp, 3, l))
				VMULPS(gate(gp, 1, l), a[l], a[l])
				VADDPS(gate(z, 0, l), a[l], a[l])
			}
			nv := cellTanh(a)
			for l := 0; l < L; l++ {
				VMOVUPS(nv[l], gate(gp, 0, l))
			}
			// h = n + u*(hPrev - n)
			d := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(st(hp, l), d[l])
				VSUBPS(nv[l], d[l], d[l])
				VMOVUPS(gate(gp, 2, l), a[l])
				VFMADD213PS(nv[l], a[l], d[l]) // d = d*u + n
			}
			for l := 0; l < L; l++ {
				VMOVUPS(d[l], st(h, l))
				VMOVUPS(d[l], st(h2, l))
			}
		}, z, gp)
	}

	TEXT("gruBwdRow32", NOSPLIT, "func(gates, hPrev, dh, dc, dz, dcPrev *float32, hid, nv int)")
	Pragma("noescape")
	Doc("gruBwdRow32 is the backward GRU cell for nv*8 columns of one row.")
	{
		gt := Load(Param("gates"), GP64())
		hp := Load(Param("hPrev"), GP64())
		dh := Load(Param("dh"), GP64())
		dc := Load(Param("dc"), GP64())
		dz := Load(Param("dz"), GP64())
		dcp := Load(Param("dcPrev"), GP64())
		rc := newRowCell()
		st := func(base Register) Mem { return rc.state(base, 0) }
		gate := func(base Register, q int) Mem { return rc.gate(base, q, 0) }
		rc.loop(func() {
			one := loadK("one")
			ng, rg, ug := YMM(), YMM(), YMM()
			VMOVUPS(gate(gt, 0), ng)
			VMOVUPS(gate(gt, 1), rg)
			VMOVUPS(gate(gt, 2), ug)
			d := YMM()
			VMOVUPS(st(dh), d)
			VADDPS(st(dc), d, d) // d = dh + dc

			// dcPrev = d*u
			x := YMM()
			VMULPS(ug, d, x)
			VMOVUPS(x, st(dcp))

			// du = d*(hPrev - n)*u*(1-u)
			omu := YMM()
			VSUBPS(ug, one, omu)
			e := YMM()
			VMOVUPS(st(hp), e)
			VSUBPS(ng, e, e)
			VMULPS(d, e, e)
			VMULPS(ug, e, e)
			VMULPS(omu, e, e)
			VMOVUPS(e, gate(dz, 2))

			// dn_x = d*(1-u)*(1-n*n)
			n2 := YMM()
			VMOVAPS(ng, n2)
			VFNMADD213PS(one, ng, n2) // 1 - n*n
			VMULPS(omu, d, d)
			VMULPS(n2, d, d)
			VMOVUPS(d, gate(dz, 0))

			// dn_h = dn_x*r
			VMULPS(rg, d, x)
			VMOVUPS(x, gate(dz, 3))

			// dr = dn_x*n_h*r*(1-r)
			VMULPS(gate(gt, 3), d, d)
			VMULPS(rg, d, d)
			omr := YMM()
			VSUBPS(rg, one, omr)
			VMULPS(omr, d, d)
			VMOVUPS(d, gate(dz, 1))
		}, gt, dz)
	}
}

// genExpShift emits expShift32(x *float32, n int, m float32) float32, which
// sets x[i] = exp(x[i] - m) for i < n (n a multiple of 8, x[i] <= m or
// NaN) and returns their sum, accumulated in float32 over 8 lanes: the
// exponentials and the denominator of a softmax.
func genExpShift() {
	TEXT("expShift32", NOSPLIT, "func(x *float32, n int, m float32) float32")
	Pragma("noescape")
	Doc("expShift32 sets x[i] = exp(x[i]-m) for i < n and returns their sum; n must be a",
		"multiple of 8 and x[i] <= m. Results below exp(-87.3) are flushed to 0.")
	x := Load(Param("x"), GP64())
	n := Load(Param("n"), GP64())
	ms := Load(Param("m"), XMM())
	mv := YMM()
	VBROADCASTSS(ms, mv)
	sum := YMM()
	VXORPS(sum, sum, sum)
	SHRQ(U8(3), n)
	JZ(LabelRef("done"))
	Label("loop")
	t := YMM()
	VSUBPS(Mem{Base: x}, mv, t) // t = m - x >= 0
	e := expNeg([]VecVirtual{t})
	VMOVUPS(e[0], Mem{Base: x})
	VADDPS(e[0], sum, sum)
	ADDQ(U8(32), x)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	Store(hsum(sum), ReturnIndex(0))
	VZEROUPPER()
	RET()
}
