package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genLSTM emits the per-row fused LSTM cell kernels. Each call handles
// nv*8 columns of one batch row; z/gates point at the row's i block and
// the f, g, o blocks follow at hid, 2*hid, 3*hid elements.
func genLSTM() {
	TEXT("lstmFwdRow32", NOSPLIT, "func(z, gates, cPrev, c, h, h2, tanhC *float32, hid, nv int)")
	Pragma("noescape")
	Doc("lstmFwdRow32 is the forward LSTM cell for nv*8 columns of one row: it reads the",
		"pre-activations at z and writes the activated gates at gates (which may equal z)",
		"and h at both h and h2 (which may equal h).")
	{
		z := Load(Param("z"), GP64())
		gp := Load(Param("gates"), GP64())
		cp := Load(Param("cPrev"), GP64())
		c := Load(Param("c"), GP64())
		h := Load(Param("h"), GP64())
		h2 := Load(Param("h2"), GP64())
		tc := Load(Param("tanhC"), GP64())
		rc := newRowCell()
		hb := rc.hb
		// Gates q = 0..3 are i, f, g, o.
		gate, st := rc.gate, rc.state
		rc.loops(func(L int) {
			// In training the gates, c and tanhC go to a cold sequence
			// buffer: fetch the lines 4 rows ahead so that the stores do
			// not wait for them.
			pf := GP64()
			MOVQ(hb, pf)
			SHLQ(U8(4), pf)
			for q := 0; q < 4; q++ {
				PREFETCHT0(Mem{Base: gp, Index: pf, Scale: 1})
				if q < 3 {
					ADDQ(hb, pf)
				}
			}
			MOVQ(hb, pf)
			SHLQ(U8(2), pf)
			ADDQ(rc.off, pf)
			PREFETCHT0(Mem{Base: c, Index: pf, Scale: 1})
			PREFETCHT0(Mem{Base: tc, Index: pf, Scale: 1})

			rc.activate(z, gp, 0, L, cellSigmoid)
			rc.activate(z, gp, 1, L, cellSigmoid)
			rc.activate(z, gp, 2, L, cellTanh)
			rc.activate(z, gp, 3, L, cellSigmoid)
			// c = f*cPrev + i*g from the stored activations.
			cv := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(gate(gp, 1, l), cv[l])
				VMULPS(st(cp, l), cv[l], cv[l])
			}
			ig := regs(L)
			for l := 0; l < L; l++ {
				VMOVUPS(gate(gp, 0, l), ig[l])
				VFMADD231PS(gate(gp, 2, l), ig[l], cv[l])
			}
			for l := 0; l < L; l++ {
				VMOVUPS(cv[l], st(c, l))
			}
			t := cellTanh(cv)
			for l := 0; l < L; l++ {
				VMOVUPS(t[l], st(tc, l))
				VMULPS(gate(gp, 3, l), t[l], t[l])
				VMOVUPS(t[l], st(h, l))
				VMOVUPS(t[l], st(h2, l))
			}
		}, z, gp)
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
		rc := newRowCell()
		hb, hb3 := rc.hb, rc.hb3
		st := func(base Register) Mem { return rc.state(base, 0) }
		rc.loop(func() {
			// The gates, cPrev and tanhC of a training step come from a
			// cold sequence buffer: prefetch 4 rows ahead (each row of
			// gates is 16·hid bytes, of the states 4·hid bytes).
			pf := GP64()
			MOVQ(hb, pf)
			SHLQ(U8(4), pf) // 4 rows of gates: 64·hid bytes = 16·hb
			PREFETCHT0(Mem{Base: gt, Index: pf, Scale: 1})
			ADDQ(hb, pf)
			PREFETCHT0(Mem{Base: gt, Index: pf, Scale: 1})
			ADDQ(hb, pf)
			PREFETCHT0(Mem{Base: gt, Index: pf, Scale: 1})
			ADDQ(hb, pf)
			PREFETCHT0(Mem{Base: gt, Index: pf, Scale: 1})
			MOVQ(hb, pf)
			SHLQ(U8(2), pf) // 4 rows of states: 16·hid bytes = 4·hb
			ADDQ(rc.off, pf)
			PREFETCHT0(Mem{Base: cp, Index: pf, Scale: 1})
			PREFETCHT0(Mem{Base: tc, Index: pf, Scale: 1})

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
		}, gt, dz)
	}
}
