package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Packed GEMM: the micro-kernel reads A and B from contiguous packed
// panels, so its loads are sequential and its working set (one 16-column
// panel of B, kb×16 floats) stays in L1 without the set conflicts that
// power-of-two row strides cause.
//
// Layouts (kb is the depth of the k block):
//
//	A micro-panel: 6 rows, ap[p*6 + r] for p < kb, r < 6
//	B panel:       16 columns, bp[p*16 + j] for p < kb, j < 16
//
// sgemmPacked6x16 computes np consecutive 6×16 tiles of C (rows 6*q..6*q+5
// for q < np) from np consecutive A micro-panels and one B panel.

func genGemmPacked() {
	genPackedKernel()
	genPackA6()
	genPackB16()
}

func genPackedKernel() {
	TEXT("sgemmPacked6x16", NOSPLIT, "func(np, mr, k int, a, b, c *float32, ldc int, acc bool)")
	Pragma("noescape")
	Doc("sgemmPacked6x16 computes np 6×16 tiles C[6q+r, j] (+)= sum_p a[(q*k+p)*6+r]*b[p*16+j]",
		"(tile q at c + 6q*ldc elements) from packed A micro-panels and one packed B panel,",
		"then, if mr > 0, rows r < mr of tile np. k must be >= 1 and mr <= 5.",
		"acc selects accumulation into C.")

	var (
		np   = R8
		rK   = RCX
		rKT  = RBX
		rA   = RSI
		rB   = RDI
		rB0  = R9
		rC   = RDX
		rC3  = RAX
		rLDC = R13
		rK0  = R10
	)
	Load(Param("np"), np)
	Load(Param("k"), rK0)
	Load(Param("a"), rA)
	Load(Param("b"), rB0)
	Load(Param("c"), rC)
	Load(Param("ldc"), rLDC)
	SHLQ(U8(2), rLDC)

	acc := func(r, j int) VecPhysical { return yreg(2*r + j) }
	step := func(rows, u int) {
		VMOVUPS(Mem{Base: rB, Disp: 64 * u}, Y12)
		VMOVUPS(Mem{Base: rB, Disp: 64*u + 32}, Y13)
		for r := 0; r < rows; r++ {
			bc := Y14
			if r%2 == 1 {
				bc = Y15
			}
			VBROADCASTSS(Mem{Base: rA, Disp: 24*u + 4*r}, bc)
			VFMADD231PS(Y12, bc, acc(r, 0))
			VFMADD231PS(Y13, bc, acc(r, 1))
		}
	}
	// tile emits one tile of the given number of rows at rC, advancing
	// rA to the next micro-panel.
	tile := func(rows int, p string) {
		// Prefetch the C tile: it is read (when accumulating) and written
		// only after the k loop, and C is usually in L2.
		LEAQ(Mem{Base: rLDC, Index: rLDC, Scale: 2}, rC3)
		ADDQ(rC, rC3)
		for r := 0; r < rows; r++ {
			PREFETCHT0(cAddr(r, 0))
			PREFETCHT0(cAddr(r, 0).Offset(60))
		}
		for i := 0; i < 2*rows; i++ {
			VXORPS(yreg(i), yreg(i), yreg(i))
		}
		MOVQ(rB0, rB)
		MOVQ(rK0, rK)
		MOVQ(rK0, rKT)
		ANDQ(U8(3), rKT)
		SHRQ(U8(2), rK)
		JZ(LabelRef(p + "k1"))
		Label(p + "k4")
		for u := 0; u < 4; u++ {
			step(rows, u)
		}
		ADDQ(U8(96), rA)
		ADDQ(U32(256), rB)
		DECQ(rK)
		JNZ(LabelRef(p + "k4"))
		Label(p + "k1")
		TESTQ(rKT, rKT)
		JZ(LabelRef(p + "store"))
		Label(p + "k1loop")
		step(rows, 0)
		ADDQ(U8(24), rA)
		ADDQ(U8(64), rB)
		DECQ(rKT)
		JNZ(LabelRef(p + "k1loop"))

		Label(p + "store")
		CMPB(paramAddr("acc"), U8(0))
		JE(LabelRef(p + "write"))
		for r := 0; r < rows; r++ {
			for j := 0; j < 2; j++ {
				VADDPS(cAddr(r, j), acc(r, j), acc(r, j))
			}
		}
		Label(p + "write")
		for r := 0; r < rows; r++ {
			for j := 0; j < 2; j++ {
				VMOVUPS(acc(r, j), cAddr(r, j))
			}
		}
	}

	TESTQ(np, np)
	JZ(LabelRef("edge"))
	Label("panel")
	tile(6, "t6")
	// Next tile: C moves down 6 rows; A already points at the next panel.
	LEAQ(Mem{Base: rLDC, Index: rLDC, Scale: 2}, rC3)
	LEAQ(Mem{Base: rC, Index: rC3, Scale: 2}, rC)
	DECQ(np)
	JNZ(LabelRef("panel"))

	Label("edge")
	Load(Param("mr"), np)
	for r := 1; r < 6; r++ {
		CMPQ(np, U8(r))
		JE(LabelRef(fmt.Sprintf("rows%d", r)))
	}
	JMP(LabelRef("done"))
	for r := 1; r < 6; r++ {
		Label(fmt.Sprintf("rows%d", r))
		tile(r, fmt.Sprintf("t%d", r))
		JMP(LabelRef("done"))
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// genPackA6 emits packA6, which packs columns of a row-major k×m matrix A
// (the TN operand: row p holds A(·, p)ᵀ) into 6-row micro-panels. It walks
// A row by row, so a cold A streams in sequentially.
func genPackA6() {
	TEXT("packA6", NOSPLIT, "func(dst, a *float32, lda, k, kst, nu, nm int, mask *int32)")
	Pragma("noescape")
	Doc("packA6 sets dst[(q*kst+p)*6+r] = a[p*lda+6q+r] for q < nu+nm, p < k <= kst, r < 6.",
		"Panels q < nu are read with plain 8-lane loads (a[p*lda+6q+7] must be readable);",
		"the nm <= 2 panels after them with masked loads, mask[8*(q-nu):] selecting the",
		"lanes to read (others give 0). Rows p < k-1 are stored with 8 lanes, spilling into",
		"row p+1; dst needs 2 elements of slack after the last panel.")
	dst := Load(Param("dst"), GP64())
	a := Load(Param("a"), GP64())
	lda := Load(Param("lda"), GP64())
	SHLQ(U8(2), lda)
	k := Load(Param("k"), GP64())
	nu := Load(Param("nu"), GP64())
	nm := Load(Param("nm"), GP64())
	mk := Load(Param("mask"), GP64())
	ks := Load(Param("kst"), GP64()) // panel stride in bytes: 24kst
	LEAQ(Mem{Base: ks, Index: ks, Scale: 2}, ks)
	SHLQ(U8(3), ks)
	TESTQ(k, k)
	JZ(LabelRef("done"))
	m0, m1 := YMM(), YMM()
	VMOVDQU(Mem{Base: mk}, m0)
	VMOVDQU(Mem{Base: mk, Disp: 32}, m1)
	s, d, q := GP64(), GP64(), GP64()
	DECQ(k) // rows before the last
	for _, last := range []bool{false, true} {
		pre := "row"
		if last {
			pre = "last"
		}
		store := func(v VecVirtual) {
			if last {
				// Exactly 6 floats: the 8-lane store would spill into the
				// next panel, which is already packed.
				VMOVUPS(v.AsX(), Mem{Base: d})
				x := XMM()
				VEXTRACTF128(U8(1), v, x)
				VMOVQ(x, Mem{Base: d, Disp: 16})
			} else {
				VMOVUPS(v, Mem{Base: d})
			}
		}
		if !last {
			TESTQ(k, k)
			JZ(LabelRef("lastrow"))
		} else {
			Label("lastrow")
		}
		Label(pre)
		MOVQ(a, s)
		MOVQ(dst, d)
		MOVQ(nu, q)
		TESTQ(q, q)
		JZ(LabelRef(pre + "m"))
		Label(pre + "q")
		v := YMM()
		VMOVUPS(Mem{Base: s}, v)
		store(v)
		ADDQ(U8(24), s)
		ADDQ(ks, d)
		DECQ(q)
		JNZ(LabelRef(pre + "q"))
		Label(pre + "m")
		CMPQ(nm, U8(1))
		JL(LabelRef(pre + "next"))
		v1 := YMM()
		VMASKMOVPS(Mem{Base: s}, m0, v1)
		store(v1)
		CMPQ(nm, U8(2))
		JL(LabelRef(pre + "next"))
		ADDQ(U8(24), s)
		ADDQ(ks, d)
		v2 := YMM()
		VMASKMOVPS(Mem{Base: s}, m1, v2)
		store(v2)
		Label(pre + "next")
		if !last {
			ADDQ(lda, a)
			ADDQ(U8(24), dst)
			DECQ(k)
			JNZ(LabelRef(pre))
		}
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// genPackB16 emits packB16 and packB16m, which copy a k×16 column panel of
// a row-major B into a contiguous panel (row stride 16).
// packBDistLog is log2 of the prefetch distance of packB16, in rows.
var packBDistLog = 4

func genPackB16() {
	for _, masked := range []bool{false, true} {
		name := "packB16"
		if masked {
			name += "m"
		}
		TEXT(name, NOSPLIT, "func(dst, b *float32, ldb, k int, mask *int32)")
		Pragma("noescape")
		if masked {
			Doc(fmt.Sprintf("%s sets dst[p*16+j] = b[p*ldb+j] for p < k, j < 16 where mask[j] is set, else 0.", name),
				"mask points at 16 lanes.")
		} else {
			Doc(fmt.Sprintf("%s sets dst[p*16+j] = b[p*ldb+j] for p < k, j < 16. mask is unused.", name))
		}
		dst := Load(Param("dst"), GP64())
		b := Load(Param("b"), GP64())
		ldb := Load(Param("ldb"), GP64())
		SHLQ(U8(2), ldb)
		k := Load(Param("k"), GP64())
		var m0, m1 VecVirtual
		if masked {
			mk := Load(Param("mask"), GP64())
			m0, m1 = YMM(), YMM()
			VMOVDQU(Mem{Base: mk}, m0)
			VMOVDQU(Mem{Base: mk, Disp: 32}, m1)
		}
		pf := GP64() // prefetch pointer, packBDist rows ahead
		MOVQ(ldb, pf)
		SHLQ(U8(packBDistLog), pf)
		ADDQ(b, pf)
		TESTQ(k, k)
		JZ(LabelRef("done"))
		Label("loop")
		// B is usually a cold, strided matrix: fetch rows ahead.
		PREFETCHT0(Mem{Base: pf})
		PREFETCHT0(Mem{Base: pf, Disp: 63})
		ADDQ(ldb, pf)
		v0, v1 := YMM(), YMM()
		if masked {
			VMASKMOVPS(Mem{Base: b}, m0, v0)
			VMASKMOVPS(Mem{Base: b, Disp: 32}, m1, v1)
		} else {
			VMOVUPS(Mem{Base: b}, v0)
			VMOVUPS(Mem{Base: b, Disp: 32}, v1)
		}
		VMOVUPS(v0, Mem{Base: dst})
		VMOVUPS(v1, Mem{Base: dst, Disp: 32})
		ADDQ(ldb, b)
		ADDQ(U8(64), dst)
		DECQ(k)
		JNZ(LabelRef("loop"))
		Label("done")
		VZEROUPPER()
		RET()
	}
}
