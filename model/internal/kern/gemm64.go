package kern

// GemmNN64 is the float64 version of GemmNN32: C (+)= A·B with A m×k, B k×n.
// It uses plain float64 multiply-adds in a fixed order (no approximations),
// for finite-difference gradient checks. Panics and aliasing rules are those
// of GemmNN32.
func GemmNN64(m, n, k int, a []float64, lda int, b []float64, ldb int, c []float64, ldc int, accumulate bool) {
	checkGemm("GemmNN64", m, n, k, len(a), lda, m, k, len(b), ldb, k, n, len(c), ldc)
	if gemmTrivial(m, n, k, c, ldc, accumulate) {
		return
	}
	for i := 0; i < m; i++ {
		cr := c[i*ldc : i*ldc+n]
		if !accumulate {
			clear(cr)
		}
		ar := a[i*lda : i*lda+k]
		for p, av := range ar {
			br := b[p*ldb : p*ldb+n]
			for j, bv := range br {
				cr[j] += av * bv
			}
		}
	}
}

// GemmNT64 is the float64 version of GemmNT32: C (+)= A·Bᵀ with A m×k,
// B n×k.
func GemmNT64(m, n, k int, a []float64, lda int, b []float64, ldb int, c []float64, ldc int, accumulate bool) {
	checkGemm("GemmNT64", m, n, k, len(a), lda, m, k, len(b), ldb, n, k, len(c), ldc)
	if gemmTrivial(m, n, k, c, ldc, accumulate) {
		return
	}
	for i := 0; i < m; i++ {
		cr := c[i*ldc : i*ldc+n]
		ar := a[i*lda : i*lda+k]
		for j := range cr {
			br := b[j*ldb : j*ldb+k]
			var s float64
			for p, av := range ar {
				s += av * br[p]
			}
			if accumulate {
				cr[j] += s
			} else {
				cr[j] = s
			}
		}
	}
}

// GemmTN64 is the float64 version of GemmTN32: C (+)= Aᵀ·B with A k×m,
// B k×n.
func GemmTN64(m, n, k int, a []float64, lda int, b []float64, ldb int, c []float64, ldc int, accumulate bool) {
	checkGemm("GemmTN64", m, n, k, len(a), lda, k, m, len(b), ldb, k, n, len(c), ldc)
	if gemmTrivial(m, n, k, c, ldc, accumulate) {
		return
	}
	if !accumulate {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	for p := 0; p < k; p++ {
		ar := a[p*lda : p*lda+m]
		br := b[p*ldb : p*ldb+n]
		for i, av := range ar {
			cr := c[i*ldc : i*ldc+n]
			for j, bv := range br {
				cr[j] += av * bv
			}
		}
	}
}

// gemmTrivial handles empty products: it returns true (after zeroing C
// unless accumulating) when there is nothing to multiply.
func gemmTrivial[T float32 | float64](m, n, k int, c []T, ldc int, acc bool) bool {
	if m == 0 || n == 0 {
		return true
	}
	if k == 0 {
		if !acc {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return true
	}
	return false
}

// GemmTNSum64 is the float64 version of GemmTNSum32: C (+)= Σ_s A_sᵀ·B_s,
// summed segment by segment with GemmTN64's order.
func GemmTNSum64(m, n, k, segs int, a []float64, lda, sa int, b []float64, ldb, sb int, c []float64, ldc int, accumulate bool) {
	checkGemmSum("GemmTNSum64", m, n, k, segs, len(a), lda, sa, len(b), ldb, sb, len(c), ldc)
	if segs == 0 {
		GemmTN64(m, n, 0, a, lda, b, ldb, c, ldc, accumulate)
		return
	}
	for s := 0; s < segs; s++ {
		GemmTN64(m, n, k, a[s*sa:], lda, b[s*sb:], ldb, c, ldc, accumulate || s > 0)
	}
}
