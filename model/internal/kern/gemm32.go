package kern

// Blocking parameters of the float32 GEMM driver.
const (
	gemmNR = 16  // columns per panel (two AVX vectors)
	gemmKC = 256 // depth of a k block; the packed panel is gemmKC*gemmNR floats
)

// maskTab holds 8 all-ones lanes followed by 8 zero lanes; &maskTab[8-n]
// is a VMASKMOVPS mask selecting the first n lanes.
var maskTab = [16]int32{-1, -1, -1, -1, -1, -1, -1, -1}

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
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return
	}
	if useAsm {
		gemm32Asm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, acc)
		return
	}
	gemm32Go(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, acc)
}

// gemm32Asm drives the assembly panel kernels: for each k block and each
// 16-column panel of C, one call computes the panel for all m rows in
// 6-row register blocks. For Bᵀ the panel is first transposed into a
// stack buffer.
func gemm32Asm(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var pack [gemmKC * gemmNR]float32
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		accP := acc || p0 > 0
		var ap *float32
		if ta {
			ap = &a[p0*lda]
		} else {
			ap = &a[p0]
		}
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
				if ta {
					sgemmTN16(m, kb, ap, lda, bp, bs, cp, ldc, nil, accP)
				} else {
					sgemmNN16(m, kb, ap, lda, bp, bs, cp, ldc, nil, accP)
				}
			case nb > 8:
				mask := &maskTab[16-nb]
				if ta {
					sgemmTN16m(m, kb, ap, lda, bp, bs, cp, ldc, mask, accP)
				} else {
					sgemmNN16m(m, kb, ap, lda, bp, bs, cp, ldc, mask, accP)
				}
			default:
				mask := &maskTab[8-nb]
				if ta {
					sgemmTN8m(m, kb, ap, lda, bp, bs, cp, ldc, mask, accP)
				} else {
					sgemmNN8m(m, kb, ap, lda, bp, bs, cp, ldc, mask, accP)
				}
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
