package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// rowCell holds the registers of a per-row cell kernel (genLSTM, genGRU),
// which handles nv*8 columns of one batch row: hb is hid in bytes, hb3
// three times that, off the byte offset of the current column vector in
// the row's state vectors and n the column vectors left.
type rowCell struct{ hb, hb3, off, n Register }

// newRowCell loads the hid and nv parameters; the kernel loads its
// pointers before.
func newRowCell() rowCell {
	hb := Load(Param("hid"), GP64())
	SHLQ(U8(2), hb)
	hb3 := GP64()
	LEAQ(Mem{Base: hb, Index: hb, Scale: 2}, hb3)
	n := Load(Param("nv"), GP64())
	off := GP64()
	XORQ(off, off)
	return rowCell{hb, hb3, off, n}
}

// gate returns the address of block q (0..3) of column vector l of the
// gate row at base (blocks hid elements apart).
func (c rowCell) gate(base Register, q, l int) Mem {
	switch q {
	case 0:
		return Mem{Base: base, Disp: 32 * l}
	case 1:
		return Mem{Base: base, Index: c.hb, Scale: 1, Disp: 32 * l}
	case 2:
		return Mem{Base: base, Index: c.hb, Scale: 2, Disp: 32 * l}
	default:
		return Mem{Base: base, Index: c.hb3, Scale: 1, Disp: 32 * l}
	}
}

// state returns the address of column vector l of the state vector at
// base.
func (c rowCell) state(base Register, l int) Mem {
	return Mem{Base: base, Index: c.off, Scale: 1, Disp: 32 * l}
}

// loops emits the loop over the column vectors, two at a time and then
// one (2 interleaved exp chains fit the 16 YMM registers), body(L)
// handling L of them, the gate pointers advancing by L vectors, and
// returns.
func (c rowCell) loops(body func(L int), gates ...Register) {
	vectorLoops(c.n, body, append(gates, c.off)...)
}

// loop emits the loop over the column vectors one at a time, the gate
// pointers advancing by a vector, and returns.
func (c rowCell) loop(body func(), gates ...Register) {
	TESTQ(c.n, c.n)
	JZ(LabelRef("done"))
	Label("loop")
	body()
	for _, g := range gates {
		ADDQ(U8(32), g)
	}
	ADDQ(U8(32), c.off)
	DECQ(c.n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// activate loads block q of L column vectors of the gate row at z,
// applies f and stores the results to the same place of the row at gates.
func (c rowCell) activate(z, gates Register, q, L int, f func([]VecVirtual) []VecVirtual) {
	x := regs(L)
	for l := range x {
		VMOVUPS(c.gate(z, q, l), x[l])
	}
	r := f(x)
	for l := range r {
		VMOVUPS(r[l], c.gate(gates, q, l))
	}
}
