package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genLSTM emits the per-row fused LSTM cell kernels. Each call handles
// nv*8 columns of one batch row; z/gates point at the row's i block and
// the f, g, o blocks follow at hid, 2*hid, 3*hid elements.
func genLSTM() {
	TEXT("lstmFwdRow32", NOSPLIT, "func(z, cPrev, c, h, tanhC *float32, hid, nv int)")
	Pragma("noescape")
	Doc("lstmFwdRow32 is the forward LSTM cell for nv*8 columns of one row.")
	{
		z := Load(Param("z"), GP64())
		cp := Load(Param("cPrev"), GP64())
		c := Load(Param("c"), GP64())
		h := Load(Param("h"), GP64())
		tc := Load(Param("tanhC"), GP64())
		hb := Load(Param("hid"), GP64())
		SHLQ(U8(2), hb)
		hb3 := GP64()
		LEAQ(Mem{Base: hb, Index: hb, Scale: 2}, hb3)
		n := Load(Param("nv"), GP64())
		off := GP64()
		XORQ(off, off)
		// gate returns the address of gate q (0..3 = i, f, g, o) of column
		// vector l relative to z.
		gate := func(q, l int) Mem {
			switch q {
			case 0:
				return Mem{Base: z, Disp: 32 * l}
			case 1:
				return Mem{Base: z, Index: hb, Scale: 1, Disp: 32 * l}
			case 2:
				return Mem{Base: z, Index: hb, Scale: 2, Disp: 32 * l}
			default:
				return Mem{Base: z, Index: hb3, Scale: 1, Disp: 32 * l}
			}
		}
		st := func(base Register, l int) Mem { return Mem{Base: base, Index: off, Scale: 1, Disp: 32 * l} }
		type gl struct{ q, l int }
		// apply loads the listed gates, applies f to them (interleaved in
		// groups of two) and stores the results in place.
		apply := func(list []gl, f func([]VecVirtual) []VecVirtual) {
			for i := 0; i < len(list); i += 2 {
				grp := list[i:min(i+2, len(list))]
				x := regs(len(grp))
				for k, g := range grp {
					VMOVUPS(gate(g.q, g.l), x[k])
				}
				r := f(x)
				for k, g := range grp {
					VMOVUPS(r[k], gate(g.q, g.l))
				}
			}
		}
		for _, L := range []int{2, 1} {
			loop := fmt.Sprintf("loop%d", L)
			next := fmt.Sprintf("after%d", L)
			Label(loop)
			CMPQ(n, U8(L))
			JL(LabelRef(next))
			var sig, th []gl
			for _, q := range []int{0, 1, 3} {
				for l := 0; l < L; l++ {
					sig = append(sig, gl{q, l})
				}
			}
			for l := 0; l < L; l++ {
				th = append(th, gl{2, l})
			}
			apply(sig, sigmoidVec)
			apply(th, tanhVec)
			// c = f*cPrev + i*g from the stored activations.
			cv := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(gate(1, l), cv[l])
				VMULPS(st(cp, l), cv[l], cv[l])
			}
			ig := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(gate(0, l), ig[l])
				VFMADD231PS(gate(2, l), ig[l], cv[l])
			}
			for l := 0; l < L; l++ {
				VMOVUPS(cv[l], st(c, l))
			}
			t := tanhVec(cv)
			for l := 0; l < L; l++ {
				VMOVUPS(t[l], st(tc, l))
				VMULPS(gate(3, l), t[l], t[l])
				VMOVUPS(t[l], st(h, l))
			}
			ADDQ(U8(32*L), z)
			ADDQ(U8(32*L), off)
			SUBQ(U8(L), n)
			JMP(LabelRef(loop))
			Label(next)
		}
		VZEROUPPER()
		RET()
	}

	TEXT("lstmBwdRow32", NOSPLIT, "func(gates, cPrev, tanhC, dh, dc, dz, dcPrev *float32, hid, nv int)")
	Pragma("noescape")
	Doc("lstmBwdRow32 is the backward LSTM cell for nv*8 columns of one row.")
	{
		gt := Load(Param("gates"), GP64())
		dz := Load(Param("dz"), GP64())
		cp := Load(Param("cPrev"), GP64())
		tc := Load(Param("tanhC"), GP64())
		dh := Load(Param("dh"), GP64())
		dc := Load(Param("dc"), GP64())
		dcp := Load(Param("dcPrev"), GP64())
		hb := Load(Param("hid"), GP64())
		SHLQ(U8(2), hb)
		hb3 := GP64()
		LEAQ(Mem{Base: hb, Index: hb, Scale: 2}, hb3)
		n := Load(Param("nv"), GP64())
		off := GP64()
		XORQ(off, off)
		TESTQ(n, n)
		JZ(LabelRef("done"))
		Label("loop")
		st := func(base Register) Mem { return Mem{Base: base, Index: off, Scale: 1} }

		one := loadK("one")
		ig, fg, gg, og := YMM(), YMM(), YMM(), YMM()
		VMOVUPS(Mem{Base: gt}, ig)
		VMOVUPS(Mem{Base: gt, Index: hb, Scale: 1}, fg)
		VMOVUPS(Mem{Base: gt, Index: hb, Scale: 2}, gg)
		VMOVUPS(Mem{Base: gt, Index: hb3, Scale: 1}, og)
		t := YMM()
		VMOVUPS(st(tc), t)
		dhv := YMM()
		VMOVUPS(st(dh), dhv)

		// dct = dc + dh*o*(1-tanhC^2)
		u := YMM()
		VMOVAPS(t, u)
		VFNMADD213PS(one, t, u) // u = -(t*t) + 1
		w := YMM()
		VMULPS(og, dhv, w)
		VMULPS(u, w, w)
		VADDPS(st(dc), w, w) // w = dct

		// do = dh*tanhC*o*(1-o)
		om := YMM()
		VSUBPS(og, one, om)
		VMULPS(t, dhv, dhv)
		VMULPS(og, dhv, dhv)
		VMULPS(om, dhv, dhv)
		VMOVUPS(dhv, Mem{Base: dz, Index: hb3, Scale: 1})

		// dcPrev = dct*f; df = dct*f*cPrev*(1-f)
		x := YMM()
		VMULPS(fg, w, x)
		y := YMM()
		VSUBPS(fg, one, y)
		VMULPS(st(cp), y, y)
		VMULPS(x, y, y)
		VMOVUPS(x, st(dcp))
		VMOVUPS(y, Mem{Base: dz, Index: hb, Scale: 1})

		// di = dct*g*i*(1-i)
		y2 := YMM()
		VSUBPS(ig, one, y2)
		x2 := YMM()
		VMULPS(gg, w, x2)
		VMULPS(ig, x2, x2)
		VMULPS(y2, x2, x2)
		VMOVUPS(x2, Mem{Base: dz})

		// dg = dct*i*(1-g*g)
		g2 := YMM()
		VMOVAPS(gg, g2)
		VFNMADD213PS(one, gg, g2) // 1 - g*g
		VMULPS(ig, w, w)
		VMULPS(g2, w, w)
		VMOVUPS(w, Mem{Base: dz, Index: hb, Scale: 2})

		ADDQ(U8(32), gt)
		ADDQ(U8(32), dz)
		ADDQ(U8(32), off)
		DECQ(n)
		JNZ(LabelRef("loop"))
		Label("done")
		VZEROUPPER()
		RET()
	}
}
