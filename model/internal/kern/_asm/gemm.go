package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// GEMM micro-kernels.
//
// Each generated function computes a column panel of C, nv*8 columns wide
// (the last vector optionally masked), for all m rows, in register blocks of
// up to 6 rows:
//
//	C[i, j] (+)= sum_p A(i, p) * B[p*ldb + j]
//
// where A(i, p) = a[i*lda + p] for the NN flavour and a[p*lda + i] for the
// TN flavour. All strides are in elements.

const gemmSig = "func(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, mask *int32, acc bool)"

const maxRows = 6

type gemmVariant struct {
	tn     bool
	nv     int  // vectors per row: 1 or 2
	masked bool // last vector uses mask
}

func (v gemmVariant) name() string {
	s := "NN"
	if v.tn {
		s = "TN"
	}
	n := fmt.Sprintf("sgemm%s%d", s, 8*v.nv)
	if v.masked {
		n += "m"
	}
	return n
}

// Fixed register assignment.
var (
	rK    = RCX // k/4 counter
	rKT   = RBX // k%4 counter
	rA    = RSI // A pointer (row 0)
	rA3   = R9  // A pointer (row 3), NN only
	rLDA  = R8  // lda bytes
	rLDA3 = R10 // 3*lda bytes
	rB    = RDI
	rLDB  = R11
	rLDB3 = R12
	rC    = RDX
	rC3   = RAX
	rLDC  = R13
)

func genGemm() {
	// Aᵀ·B goes through the packed kernel (gemmpack.go); the TN flavour
	// of these in-place kernels is kept in the generator but not emitted.
	for _, v := range []gemmVariant{{false, 2, false}, {false, 2, true}, {false, 1, true}} {
		genGemmVariant(v)
	}
	genTranspose()
}

func paramAddr(name string) Mem {
	b, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func genGemmVariant(v gemmVariant) {
	TEXT(v.name(), NOSPLIT, gemmSig)
	Pragma("noescape")
	what := "C (+)= A·B"
	if v.tn {
		what = "C (+)= Aᵀ·B"
	}
	Doc(fmt.Sprintf("%s computes %s for a column panel of C %d columns wide", v.name(), what, 8*v.nv),
		"(the last vector masked by mask when the name ends in m), m rows, inner dimension k.",
		"Strides are in elements. acc selects accumulation into C.")

	Load(Param("lda"), rLDA)
	SHLQ(U8(2), rLDA)
	LEAQ(Mem{Base: rLDA, Index: rLDA, Scale: 2}, rLDA3)
	Load(Param("ldb"), rLDB)
	SHLQ(U8(2), rLDB)
	LEAQ(Mem{Base: rLDB, Index: rLDB, Scale: 2}, rLDB3)
	Load(Param("ldc"), rLDC)
	SHLQ(U8(2), rLDC)
	var ymask VecPhysical
	if v.masked {
		ymask = Y15
		Load(Param("mask"), RAX)
		VMOVDQU(Mem{Base: RAX}, ymask)
	}

	mAddr := paramAddr("m")
	aAddr := paramAddr("a")
	cAddr := paramAddr("c")

	Label("rowloop")
	CMPQ(mAddr, U8(maxRows))
	JL(LabelRef("tail"))
	gemmBody(v, maxRows)
	// Advance to the next row block.
	if v.tn {
		ADDQ(U8(4*maxRows), aAddr)
	} else {
		LEAQ(Mem{Base: rLDA3, Index: rLDA3, Scale: 1}, RAX)
		ADDQ(RAX, aAddr)
	}
	LEAQ(Mem{Base: rLDC, Index: rLDC, Scale: 2}, RAX)
	SHLQ(U8(1), RAX)
	ADDQ(RAX, cAddr)
	SUBQ(U8(maxRows), mAddr)
	JMP(LabelRef("rowloop"))

	Label("tail")
	MOVQ(mAddr, RAX)
	for r := 1; r < maxRows; r++ {
		CMPQ(RAX, U8(r))
		JE(LabelRef(fmt.Sprintf("rows%d", r)))
	}
	JMP(LabelRef("done"))
	for r := 1; r < maxRows; r++ {
		Label(fmt.Sprintf("rows%d", r))
		gemmBody(v, r)
		JMP(LabelRef("done"))
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// accReg returns the accumulator register for row r, vector j.
func accReg(v gemmVariant, r, j int) VecPhysical {
	return yreg(r*v.nv + j)
}

func yreg(i int) VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}[i]
}

func withIndex(base Register, idx Register, scale uint8, disp int) Mem {
	m := Mem{Base: base, Disp: disp}
	if idx != nil && scale != 0 {
		m.Index = idx
		m.Scale = scale
	}
	return m
}

// bAddr returns the address of B row u (0..3) relative to rB.
func bAddr(u, j int) Mem {
	switch u {
	case 0:
		return Mem{Base: rB, Disp: 32 * j}
	case 1:
		return withIndex(rB, rLDB, 1, 32*j)
	case 2:
		return withIndex(rB, rLDB, 2, 32*j)
	default:
		return withIndex(rB, rLDB3, 1, 32*j)
	}
}

// aAddr returns the address of A(r, u) relative to the current pointers.
func aElem(v gemmVariant, r, u int) Mem {
	if v.tn {
		switch u {
		case 0:
			return Mem{Base: rA, Disp: 4 * r}
		case 1:
			return withIndex(rA, rLDA, 1, 4*r)
		case 2:
			return withIndex(rA, rLDA, 2, 4*r)
		default:
			return withIndex(rA, rLDA3, 1, 4*r)
		}
	}
	base := Register(rA)
	rr := r
	if r >= 3 {
		base = rA3
		rr = r - 3
	}
	if rr == 0 {
		return Mem{Base: base, Disp: 4 * u}
	}
	return withIndex(base, rLDA, uint8(rr), 4*u)
}

func cAddr(r, j int) Mem {
	base := Register(rC)
	rr := r
	if r >= 3 {
		base = rC3
		rr = r - 3
	}
	if rr == 0 {
		return Mem{Base: base, Disp: 32 * j}
	}
	return withIndex(base, rLDC, uint8(rr), 32*j)
}

// gemmStep emits the FMAs for one k step (offset u within an unrolled
// block of 4).
func gemmStep(v gemmVariant, mr, u int) {
	bv := []VecPhysical{Y12, Y13}
	for j := 0; j < v.nv; j++ {
		if v.masked && j == v.nv-1 {
			VMASKMOVPS(bAddr(u, j), Y15, bv[j])
		} else {
			VMOVUPS(bAddr(u, j), bv[j])
		}
	}
	for r := 0; r < mr; r++ {
		bc := Y14
		if !v.masked && r%2 == 1 {
			bc = Y15
		}
		VBROADCASTSS(aElem(v, r, u), bc)
		for j := 0; j < v.nv; j++ {
			VFMADD231PS(bv[j], bc, accReg(v, r, j))
		}
	}
}

func gemmBody(v gemmVariant, mr int) {
	p := fmt.Sprintf("r%d_", mr)
	Commentf("%d-row block", mr)
	Load(Param("a"), rA)
	if !v.tn && mr > 3 {
		LEAQ(Mem{Base: rA, Index: rLDA3, Scale: 1}, rA3)
	}
	Load(Param("b"), rB)
	Load(Param("c"), rC)
	if mr > 3 {
		LEAQ(Mem{Base: rLDC, Index: rLDC, Scale: 2}, rC3)
		ADDQ(rC, rC3)
	}
	// Prefetch the C block: it is read (when accumulating) and written
	// only after the k loop, often from a cold buffer.
	for r := 0; r < mr; r++ {
		PREFETCHT0(cAddr(r, 0))
		PREFETCHT0(cAddr(r, 0).Offset(32*v.nv - 4))
	}
	for r := 0; r < mr; r++ {
		for j := 0; j < v.nv; j++ {
			a := accReg(v, r, j)
			VXORPS(a, a, a)
		}
	}
	Load(Param("k"), rK)
	MOVQ(rK, rKT)
	ANDQ(U8(3), rKT)
	SHRQ(U8(2), rK)
	JZ(LabelRef(p + "k1"))

	Label(p + "k4")
	for u := 0; u < 4; u++ {
		gemmStep(v, mr, u)
	}
	if v.tn {
		LEAQ(Mem{Base: rA, Index: rLDA, Scale: 4}, rA)
	} else {
		ADDQ(U8(16), rA)
		if mr > 3 {
			ADDQ(U8(16), rA3)
		}
	}
	LEAQ(Mem{Base: rB, Index: rLDB, Scale: 4}, rB)
	DECQ(rK)
	JNZ(LabelRef(p + "k4"))

	Label(p + "k1")
	TESTQ(rKT, rKT)
	JZ(LabelRef(p + "store"))
	Label(p + "k1loop")
	gemmStep(v, mr, 0)
	if v.tn {
		ADDQ(rLDA, rA)
	} else {
		ADDQ(U8(4), rA)
		if mr > 3 {
			ADDQ(U8(4), rA3)
		}
	}
	ADDQ(rLDB, rB)
	DECQ(rKT)
	JNZ(LabelRef(p + "k1loop"))

	Label(p + "store")
	CMPB(paramAddr("acc"), U8(0))
	JE(LabelRef(p + "write"))
	for r := 0; r < mr; r++ {
		for j := 0; j < v.nv; j++ {
			a := accReg(v, r, j)
			if v.masked && j == v.nv-1 {
				VMASKMOVPS(cAddr(r, j), Y15, Y14)
				VADDPS(Y14, a, a)
			} else {
				VADDPS(cAddr(r, j), a, a)
			}
		}
	}
	Label(p + "write")
	for r := 0; r < mr; r++ {
		for j := 0; j < v.nv; j++ {
			a := accReg(v, r, j)
			if v.masked && j == v.nv-1 {
				VMASKMOVPS(a, Y15, cAddr(r, j))
			} else {
				VMOVUPS(a, cAddr(r, j))
			}
		}
	}
}

// genTranspose emits transpose8, the packing helper of GemmNT32: it writes
// the transpose of an 8×k8 block of B (row stride ldb elements) into dst
// with row stride 16 elements (dst[p*16+r] = b[r*ldb+p]); k8 must be a
// multiple of 8.
func genTranspose() {
	TEXT("transpose8", NOSPLIT, "func(dst, b *float32, ldb, k8 int)")
	Pragma("noescape")
	Doc("transpose8 sets dst[p*16+r] = b[r*ldb+p] for r < 8, p < k8; k8 must be a multiple of 8.")
	dst := Load(Param("dst"), GP64())
	b := Load(Param("b"), GP64())
	l := Load(Param("ldb"), GP64())
	SHLQ(U8(2), l)
	l3 := GP64()
	LEAQ(Mem{Base: l, Index: l, Scale: 2}, l3)
	b4 := GP64()
	LEAQ(Mem{Base: b, Index: l, Scale: 4}, b4)
	n := Load(Param("k8"), GP64())
	SHRQ(U8(3), n)
	JZ(LabelRef("done"))
	Label("loop")
	addrs := []Mem{
		{Base: b}, {Base: b, Index: l, Scale: 1}, {Base: b, Index: l, Scale: 2}, {Base: b, Index: l3, Scale: 1},
		{Base: b4}, {Base: b4, Index: l, Scale: 1}, {Base: b4, Index: l, Scale: 2}, {Base: b4, Index: l3, Scale: 1},
	}
	r := regs(8)
	for i := range r {
		VMOVUPS(addrs[i], r[i])
	}
	t := regs(8)
	for i := 0; i < 4; i++ {
		VUNPCKLPS(r[2*i+1], r[2*i], t[2*i])   // a0 b0 a1 b1 | a4 b4 a5 b5
		VUNPCKHPS(r[2*i+1], r[2*i], t[2*i+1]) // a2 b2 a3 b3 | a6 b6 a7 b7
	}
	s := regs(8)
	for h := 0; h < 2; h++ { // rows 0-3, rows 4-7
		x, y := t[4*h], t[4*h+2]
		VSHUFPS(U8(0x44), y, x, s[4*h+0]) // col 0 | col 4
		VSHUFPS(U8(0xEE), y, x, s[4*h+1]) // col 1 | col 5
		x, y = t[4*h+1], t[4*h+3]
		VSHUFPS(U8(0x44), y, x, s[4*h+2]) // col 2 | col 6
		VSHUFPS(U8(0xEE), y, x, s[4*h+3]) // col 3 | col 7
	}
	for c := 0; c < 4; c++ {
		o := YMM()
		VPERM2F128(U8(0x20), s[4+c], s[c], o)
		VMOVUPS(o, Mem{Base: dst, Disp: 64 * c})
		o2 := YMM()
		VPERM2F128(U8(0x31), s[4+c], s[c], o2)
		VMOVUPS(o2, Mem{Base: dst, Disp: 64 * (c + 4)})
	}
	ADDQ(U8(32), b)
	ADDQ(U8(32), b4)
	ADDQ(U32(8*64), dst)
	DECQ(n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}
