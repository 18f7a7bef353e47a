package kern

// Blocking parameters of the float32 GEMM driver.
const (
	gemmNR = 16  // columns per panel (two AVX vectors)
	gemmKC = 256 // depth of a k block; the packed panel is gemmKC*gemmNR floats
)

// maskTab holds 8 all-ones lanes followed by 8 zero lanes; &maskTab[8-n]
// is a VMASKMOVPS mask selecting the first n lanes.
var maskTab = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

// maskTab16 is the 16-lane version of maskTab: &maskTab16[16-n] selects
// the first n of 16 lanes (two vectors).
var maskTab16 = [32]int32{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}

// GemmNN32 computes C = A·B, or C += A·B when accumulate is true, where A is
// m×k (row i at a[i*lda:]), B is k×n (row p at b[p*ldb:]) and C is m×n (row
// i at c[i*ldc:]). When accumulate is false C is only written, never read,
// so it may hold garbage (even NaN) on entry.
//
// It panics if a size is negative, a leading dimension is smaller than the
// row length it strides over (or < 1), or a slice is shorter than
// (rows-1)*ld+cols. C must not overlap A or B.
func GemmNN32(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	checkGemm("GemmNN32", m, n, k, len(a), lda, m, k, len(b), ldb, k, n, len(c), ldc)
	gemm32(false, false, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

// GemmNT32 computes C = A·Bᵀ, or C += A·Bᵀ when accumulate is true, where A
// is m×k (row i at a[i*lda:]), B is n×k (row j at b[j*ldb:]) and C is m×n.
// Panics and aliasing rules are those of GemmNN32.
func GemmNT32(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	checkGemm("GemmNT32", m, n, k, len(a), lda, m, k, len(b), ldb, n, k, len(c), ldc)
	gemm32(false, true, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

// GemmTN32 computes C = Aᵀ·B, or C += Aᵀ·B when accumulate is true, where A
// is k×m (row p at a[p*lda:]), B is k×n (row p at b[p*ldb:]) and C is m×n.
// Panics and aliasing rules are those of GemmNN32.
func GemmTN32(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	checkGemm("GemmTN32", m, n, k, len(a), lda, k, m, len(b), ldb, k, n, len(c), ldc)
	gemm32(true, false, m, n, k, a, lda, b, ldb, c, ldc, accumulate)
}

// GemmTNSum32 computes C = Σ_s A_sᵀ·B_s, or C += Σ_s A_sᵀ·B_s when
// accumulate is true, over segs segments: A_s = a[s*sa:] is k×m (row p at
// a[s*sa+p*lda:]) and B_s = b[s*sb:] is k×n (row p at b[s*sb+p*ldb:]). It
// is GemmTN32 on the matrices stacking the segments' rows (segs*k rows),
// for operands that live in pieces, such as one block of rows at several
// time steps; it is faster than one GemmTN32 per segment.
//
// It panics if a size is negative, a leading dimension is too small, a
// segment stride is negative, or a slice is shorter than its last
// segment's end. C must not overlap A or B.
func GemmTNSum32(m, n, k, segs int, a []float32, lda, sa int, b []float32, ldb, sb int, c []float32, ldc int, accumulate bool) {
	checkGemmSum("GemmTNSum32", m, n, k, segs, len(a), lda, sa, len(b), ldb, sb, len(c), ldc)
	switch {
	case segs == 0 || k == 0:
		gemm32(true, false, m, n, 0, a, lda, b, ldb, c, ldc, accumulate)
	case useAsm && m > 0 && n > 0:
		gemm32TNPacked(m, n, k, segs, a, lda, sa, b, ldb, sb, c, ldc, accumulate)
	default:
		for s := 0; s < segs; s++ {
			gemm32(true, false, m, n, k, a[s*sa:], lda, b[s*sb:], ldb, c, ldc, accumulate || s > 0)
		}
	}
}

// checkGemmSum validates the sizes of a segmented TN call.
func checkGemmSum(name string, m, n, k, segs, la, lda, sa, lb, ldb, sb, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 || segs < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	if sa < 0 || sb < 0 {
		panic("kern: " + name + ": negative segment stride")
	}
	last := max(segs-1, 0)
	if la < last*sa || lb < last*sb {
		panic("kern: " + name + ": A or B too short")
	}
	checkMat(name, "A", la-last*sa, lda, k, m)
	checkMat(name, "B", lb-last*sb, ldb, k, n)
	checkMat(name, "C", lc, ldc, m, n)
}

// checkGemm validates the sizes of a GEMM call. (ar, ac) and (br, bc) are the
// stored shapes of A and B.
func checkGemm(name string, m, n, k, la, lda, ar, ac, lb, ldb, br, bc, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	checkMat(name, "A", la, lda, ar, ac)
	checkMat(name, "B", lb, ldb, br, bc)
	checkMat(name, "C", lc, ldc, m, n)
}

func checkMat(name, which string, l, ld, r, c int) {
	if ld < 1 || ld < c {
		panic("kern: " + name + ": bad leading dimension of " + which)
	}
	if r > 0 && c > 0 && l < (r-1)*ld+c {
		panic("kern: " + name + ": " + which + " too short")
	}
}

func gemm32(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	if gemmTrivial(m, n, k, c, ldc, acc) {
		return
	}
	if useAsm {
		if ta {
			gemm32TNPacked(m, n, k, 1, a, lda, 0, b, ldb, 0, c, ldc, acc)
			return
		}
		gemm32Asm(tb, m, n, k, a, lda, b, ldb, c, ldc, acc)
		return
	}
	gemm32Go(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, acc)
}

// gemm32Asm drives the assembly panel kernels for A·B and A·Bᵀ: for each
// k block and each 16-column panel of C, one call computes the panel for
// all m rows in 6-row register blocks. For Bᵀ the panel is first
// transposed into a stack buffer.
func gemm32Asm(tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var pack [gemmKC * gemmNR]float32
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		accP := acc || p0 > 0
		ap := &a[p0]
		for j0 := 0; j0 < n; j0 += gemmNR {
			nb := min(gemmNR, n-j0)
			var bp *float32
			bs := ldb
			if tb {
				packBT(pack[:], b[j0*ldb+p0:], ldb, nb, kb)
				bp, bs = &pack[0], gemmNR
			} else {
				bp = &b[p0*ldb+j0]
			}
			cp := &c[j0]
			switch {
			case nb == 16:
				sgemmNN16(m, kb, ap, lda, bp, bs, cp, ldc, nil, accP)
			case nb > 8:
				sgemmNN16m(m, kb, ap, lda, bp, bs, cp, ldc, &maskTab[16-nb], accP)
			default:
				sgemmNN8m(m, kb, ap, lda, bp, bs, cp, ldc, &maskTab[8-nb], accP)
			}
		}
	}
}

// packBT writes the transpose of the nb×kb block of b (row stride ldb) into
// dst as a kb×gemmNR panel: dst[p*gemmNR+j] = b[j*ldb+p]. Columns j >= nb of
// dst are left untouched. Groups of 8 rows use the AVX transpose8, so this
// is only called on the assembly path.
func packBT(dst []float32, b []float32, ldb, nb, kb int) {
	dst = dst[:kb*gemmNR]
	j := 0
	kb8 := kb &^ 7
	for ; j+8 <= nb; j += 8 {
		if kb8 > 0 {
			transpose8(&dst[j], &b[j*ldb], ldb, kb8)
		}
		for r := 0; r < 8; r++ {
			row := b[(j+r)*ldb:][:kb]
			for p := kb8; p < kb; p++ {
				dst[p*gemmNR+j+r] = row[p]
			}
		}
	}
	for ; j+4 <= nb; j += 4 {
		r0 := b[j*ldb:][:kb]
		r1 := b[(j+1)*ldb:][:kb]
		r2 := b[(j+2)*ldb:][:kb]
		r3 := b[(j+3)*ldb:][:kb]
		for p := range r0 {
			d := dst[p*gemmNR+j:][:4]
			d[0] = r0[p]
			d[1] = r1[p]
			d[2] = r2[p]
			d[3] = r3[p]
		}
	}
	for ; j < nb; j++ {
		r := b[j*ldb:][:kb]
		for p, v := range r {
			dst[p*gemmNR+j] = v
		}
	}
}

// Blocking of the packed Aᵀ·B driver: a k block of A (tnKC×tnMC, in
// 6-row micro-panels) and one 16-column panel of B (tnKC×16) live in
// stack buffers of 66 KiB and 8 KiB.
const (
	tnKC = 128
	tnMC = 132 // a multiple of 6
)

// gemm32TNPacked computes C (+)= Σ_s A_sᵀ·B_s over segs segments, A_s =
// a[s*sa:] (k×m) and B_s = b[s*sb:] (k×n), with packed operands: the
// product of the row-stacked segments, k*segs rows deep. For each block of
// tnKC stacked rows and each group of up to tnMC rows of C it packs the
// group's columns of A into micro-panels, then for each 16-column panel
// of C packs B's panel and runs the 6×16 micro-kernel down the group (the
// bottom tile computing only the rows it has). Panels that cross the
// right edge of C go through a 6×16 scratch tile.
func gemm32TNPacked(m, n, k, segs int, a []float32, lda, sa int, b []float32, ldb, sb int, c []float32, ldc int, acc bool) {
	var ap [tnKC*tnMC + 8]float32
	var bp [tnKC * gemmNR]float32
	var tile [6 * gemmNR]float32
	kt := k * segs
	for p0 := 0; p0 < kt; p0 += tnKC {
		kb := min(tnKC, kt-p0)
		accP := acc || p0 > 0
		for i0 := 0; i0 < m; i0 += tnMC {
			mb := min(tnMC, m-i0)
			// Pack the stacked rows [p0, p0+kb) run by run.
			for p := p0; p < p0+kb; {
				s, q := p/k, p%k
				rows := min(k-q, p0+kb-p)
				packATN(ap[(p-p0)*6:], a[s*sa+q*lda+i0:], lda, rows, kb, mb)
				p += rows
			}
			nfull := mb / 6
			for j0 := 0; j0 < n; j0 += gemmNR {
				nb := min(gemmNR, n-j0)
				for p := p0; p < p0+kb; {
					s, q := p/k, p%k
					rows := min(k-q, p0+kb-p)
					bs := b[s*sb+q*ldb+j0:]
					if nb == gemmNR {
						packB16(&bp[(p-p0)*gemmNR], &bs[0], ldb, rows, nil)
					} else {
						packB16m(&bp[(p-p0)*gemmNR], &bs[0], ldb, rows, &maskTab16[16-nb])
					}
					p += rows
				}
				if nb == gemmNR {
					sgemmPacked6x16(nfull, mb-6*nfull, kb, &ap[0], &bp[0], &c[i0*ldc+j0], ldc, accP)
					continue
				}
				// Right edge: through a scratch tile, one micro-panel at a
				// time.
				for q := 0; q*6 < mb; q++ {
					sgemmPacked6x16(1, 0, kb, &ap[q*6*kb], &bp[0], &tile[0], gemmNR, false)
					for r := 0; r < min(6, mb-6*q); r++ {
						cr := c[(i0+6*q+r)*ldc+j0:][:nb]
						tr := tile[r*gemmNR:][:nb]
						if accP {
							for j, v := range tr {
								cr[j] += v
							}
						} else {
							copy(cr, tr)
						}
					}
				}
			}
		}
	}
}

// packATN packs columns [0, mb) of the rows×mb block of a (row stride lda)
// into 6-row micro-panels of kst rows at dst: dst[(q*kst+p)*6+r] =
// a[p*lda+6q+r], zero for 6q+r >= mb. Panels whose 8-lane row loads stay
// inside the block are read unmasked, the last one or two with masked
// loads.
func packATN(dst []float32, a []float32, lda, rows, kst, mb int) {
	np := (mb + 5) / 6
	nu := 0 // panels q with 6q+8 <= mb
	if mb >= 8 {
		nu = min(np, (mb-8)/6+1)
	}
	_ = dst[((np-1)*kst+rows-1)*6+7] // with the slack of the 8-lane stores
	_ = a[(rows-1)*lda+mb-1]
	var masks [16]int32
	for q := nu; q < np; q++ {
		copy(masks[8*(q-nu):], maskTab[8-min(6, mb-6*q):][:8])
	}
	packA6(&dst[0], &a[0], lda, rows, kst, nu, np-nu, &masks[0])
}
