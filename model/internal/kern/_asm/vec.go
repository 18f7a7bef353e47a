package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func genAdam() {
	TEXT("adam32", NOSPLIT, "func(p, gr, m, v *float32, n int, hp *[8]float32)")
	Pragma("noescape")
	Doc("adam32 applies one AdamW step to n elements; n must be a multiple of 8.",
		"hp holds beta1, 1-beta1, beta2, 1-beta2, eps, 1-lr*wd, lr/bc1, 1/sqrt(bc2).")
	p := Load(Param("p"), GP64())
	g := Load(Param("gr"), GP64())
	m := Load(Param("m"), GP64())
	v := Load(Param("v"), GP64())
	n := Load(Param("n"), GP64())
	hp := Load(Param("hp"), GP64())
	var h [8]VecVirtual
	for i := range h {
		h[i] = YMM()
		VBROADCASTSS(Mem{Base: hp, Disp: 4 * i}, h[i])
	}
	b1, omb1, b2, omb2, eps, decay, step, rsb2 := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	SHRQ(U8(3), n)
	JZ(LabelRef("done"))
	Label("loop")
	gv := YMM()
	VMOVUPS(Mem{Base: g}, gv)
	mv := YMM()
	VMULPS(Mem{Base: m}, b1, mv)
	VFMADD231PS(omb1, gv, mv)
	VMOVUPS(mv, Mem{Base: m})
	vv := YMM()
	VMULPS(Mem{Base: v}, b2, vv)
	VMULPS(gv, gv, gv)
	VFMADD231PS(omb2, gv, vv)
	VMOVUPS(vv, Mem{Base: v})
	VSQRTPS(vv, vv)
	VFMADD213PS(eps, rsb2, vv) // vv = sqrt(v)*rsb2 + eps
	VDIVPS(vv, mv, mv)
	pv := YMM()
	VMULPS(Mem{Base: p}, decay, pv)
	VFNMADD231PS(step, mv, pv) // pv -= step*q
	VMOVUPS(pv, Mem{Base: p})
	for _, r := range []Register{p, g, m, v} {
		ADDQ(U8(32), r)
	}
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

func genVec() {
	// axpy32: y += alpha*x.
	TEXT("axpy32", NOSPLIT, "func(alpha float32, x, y *float32, n int)")
	Pragma("noescape")
	Doc("axpy32 sets y[i] += alpha*x[i] for i < n.")
	{
		as := Load(Param("alpha"), XMM())
		a := YMM()
		VBROADCASTSS(as, a)
		x := Load(Param("x"), GP64())
		y := Load(Param("y"), GP64())
		n := Load(Param("n"), GP64())
		Label("loop32")
		CMPQ(n, U8(32))
		JL(LabelRef("loop8"))
		for u := 0; u < 4; u++ {
			t := YMM()
			VMOVUPS(Mem{Base: y, Disp: 32 * u}, t)
			VFMADD231PS(Mem{Base: x, Disp: 32 * u}, a, t)
			VMOVUPS(t, Mem{Base: y, Disp: 32 * u})
		}
		ADDQ(U8(128), x)
		ADDQ(U8(128), y)
		SUBQ(U8(32), n)
		JMP(LabelRef("loop32"))
		Label("loop8")
		CMPQ(n, U8(8))
		JL(LabelRef("tail"))
		t := YMM()
		VMOVUPS(Mem{Base: y}, t)
		VFMADD231PS(Mem{Base: x}, a, t)
		VMOVUPS(t, Mem{Base: y})
		ADDQ(U8(32), x)
		ADDQ(U8(32), y)
		SUBQ(U8(8), n)
		JMP(LabelRef("loop8"))
		Label("tail")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		s := XMM()
		VMOVSS(Mem{Base: y}, s)
		VFMADD231SS(Mem{Base: x}, as, s)
		VMOVSS(s, Mem{Base: y})
		ADDQ(U8(4), x)
		ADDQ(U8(4), y)
		DECQ(n)
		JMP(LabelRef("tail"))
		Label("done")
		VZEROUPPER()
		RET()
	}

	// scale32: x *= alpha.
	TEXT("scale32", NOSPLIT, "func(alpha float32, x *float32, n int)")
	Pragma("noescape")
	Doc("scale32 sets x[i] *= alpha for i < n.")
	{
		as := Load(Param("alpha"), XMM())
		a := YMM()
		VBROADCASTSS(as, a)
		x := Load(Param("x"), GP64())
		n := Load(Param("n"), GP64())
		Label("loop32")
		CMPQ(n, U8(32))
		JL(LabelRef("loop8"))
		for u := 0; u < 4; u++ {
			t := YMM()
			VMULPS(Mem{Base: x, Disp: 32 * u}, a, t)
			VMOVUPS(t, Mem{Base: x, Disp: 32 * u})
		}
		ADDQ(U8(128), x)
		SUBQ(U8(32), n)
		JMP(LabelRef("loop32"))
		Label("loop8")
		CMPQ(n, U8(8))
		JL(LabelRef("tail"))
		t := YMM()
		VMULPS(Mem{Base: x}, a, t)
		VMOVUPS(t, Mem{Base: x})
		ADDQ(U8(32), x)
		SUBQ(U8(8), n)
		JMP(LabelRef("loop8"))
		Label("tail")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		s := XMM()
		VMULSS(Mem{Base: x}, as, s)
		VMOVSS(s, Mem{Base: x})
		ADDQ(U8(4), x)
		DECQ(n)
		JMP(LabelRef("tail"))
		Label("done")
		VZEROUPPER()
		RET()
	}

	// sqnorm32: sum of squares accumulated in float64.
	TEXT("sqnorm32", NOSPLIT, "func(x *float32, n int) float64")
	Pragma("noescape")
	Doc("sqnorm32 returns sum x[i]^2 for i < n, accumulated in float64.")
	{
		x := Load(Param("x"), GP64())
		n := Load(Param("n"), GP64())
		acc := []VecVirtual{YMM(), YMM(), YMM(), YMM()}
		for _, a := range acc {
			VXORPD(a, a, a)
		}
		Label("loop16")
		CMPQ(n, U8(16))
		JL(LabelRef("loop4"))
		for u := 0; u < 4; u++ {
			t := YMM()
			VCVTPS2PD(Mem{Base: x, Disp: 16 * u}, t)
			VFMADD231PD(t, t, acc[u])
		}
		ADDQ(U8(64), x)
		SUBQ(U8(16), n)
		JMP(LabelRef("loop16"))
		Label("loop4")
		CMPQ(n, U8(4))
		JL(LabelRef("tail"))
		t := YMM()
		VCVTPS2PD(Mem{Base: x}, t)
		VFMADD231PD(t, t, acc[0])
		ADDQ(U8(16), x)
		SUBQ(U8(4), n)
		JMP(LabelRef("loop4"))
		Label("tail")
		VADDPD(acc[1], acc[0], acc[0])
		VADDPD(acc[3], acc[2], acc[2])
		VADDPD(acc[2], acc[0], acc[0])
		hi := XMM()
		VEXTRACTF128(U8(1), acc[0], hi)
		lo := acc[0].AsX()
		VADDPD(hi, lo, lo)
		VHADDPD(lo, lo, lo)
		Label("tailloop")
		TESTQ(n, n)
		JZ(LabelRef("done"))
		s := XMM()
		VCVTSS2SD(Mem{Base: x}, lo, s)
		VFMADD231SD(s, s, lo)
		ADDQ(U8(4), x)
		DECQ(n)
		JMP(LabelRef("tailloop"))
		Label("done")
		VZEROUPPER()
		Store(lo, ReturnIndex(0))
		RET()
	}
}
