package kern

// Pre-packed right-hand operands. A matrix multiplied many times (the LSTM
// weights, once per time step) can be packed once into the layout the
// micro-kernels read best: 16-column panels, each k×16 row-major and
// contiguous. Streaming a packed panel avoids the cache-set conflicts that
// power-of-two row strides cause.

// PackedLen returns the length of the buffer that PackB32 and PackB64 fill
// for a k×n operand: k times n rounded up to a multiple of 16.
func PackedLen(k, n int) int { return k * ((n + gemmNR - 1) / gemmNR * gemmNR) }

// PackB32 packs the k×n matrix op(B) into dst for GemmNNPacked32: panel q
// (columns 16q to 16q+15) is dst[16qk:16(q+1)k] with element (p, j) at
// [p*16+j-16q]; columns past n are zero. If trans is false B is k×n (row p
// at b[p*ldb:]) and op(B) = B; if true B is stored n×k (row j at b[j*ldb:])
// and op(B) = Bᵀ.
//
// It panics if a size is negative, ldb is too small, b is too short or dst
// is shorter than PackedLen(k, n). dst must not overlap b.
func PackB32(dst, b []float32, k, n, ldb int, trans bool) {
	checkPack("PackB32", k, n, len(b), ldb, len(dst), trans)
	if k == 0 || n == 0 {
		return
	}
	for j0 := 0; j0 < n; j0 += gemmNR {
		nb := min(gemmNR, n-j0)
		d := dst[j0*k : (j0+gemmNR)*k]
		switch {
		case !trans && useAsm && nb == gemmNR:
			packB16(&d[0], &b[j0], ldb, k, nil)
		case !trans && useAsm:
			packB16m(&d[0], &b[j0], ldb, k, &maskTab16[16-nb])
		case trans && useAsm:
			if nb < gemmNR {
				clear(d)
			}
			packBT(d, b[j0*ldb:], ldb, nb, k)
		default:
			packPanelGo(d, b, j0, nb, k, ldb, trans)
		}
	}
}

// packPanelGo writes the 16-column panel of B (or Bᵀ) starting at column
// j0, nb columns wide and zero-padded, into d: the pure-Go packing.
func packPanelGo[T float32 | float64](d, b []T, j0, nb, k, ldb int, trans bool) {
	for p := 0; p < k; p++ {
		dp := d[p*gemmNR : (p+1)*gemmNR]
		for j := range dp {
			switch {
			case j >= nb:
				dp[j] = 0
			case trans:
				dp[j] = b[(j0+j)*ldb+p]
			default:
				dp[j] = b[p*ldb+j0+j]
			}
		}
	}
}

// PackB64 is the float64 version of PackB32, for GemmNNPacked64.
func PackB64(dst, b []float64, k, n, ldb int, trans bool) {
	checkPack("PackB64", k, n, len(b), ldb, len(dst), trans)
	for j0 := 0; j0 < n; j0 += gemmNR {
		packPanelGo(dst[j0*k:(j0+gemmNR)*k], b, j0, min(gemmNR, n-j0), k, ldb, trans)
	}
}

func checkPack(name string, k, n, lb, ldb, ldst int, trans bool) {
	if k < 0 || n < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	if trans {
		checkMat(name, "B", lb, ldb, n, k)
	} else {
		checkMat(name, "B", lb, ldb, k, n)
	}
	if ldst < PackedLen(k, n) {
		panic("kern: " + name + ": dst too short")
	}
}

// GemmNNPacked32 computes C = A·B, or C += A·B when accumulate is true,
// where A is m×k (row i at a[i*lda:]), B is k×n packed by PackB32 into bp,
// and C is m×n (row i at c[i*ldc:]). It gives the same results as GemmNN32
// on the unpacked B. When accumulate is false C is only written.
//
// It panics if a size is negative, lda or ldc is too small, a or c is too
// short, or bp is shorter than PackedLen(k, n). C must not overlap A or bp.
func GemmNNPacked32(m, n, k int, a []float32, lda int, bp []float32, c []float32, ldc int, accumulate bool) {
	checkGemmPacked("GemmNNPacked32", m, n, k, len(a), lda, len(bp), len(c), ldc)
	if gemmTrivial(m, n, k, c, ldc, accumulate) {
		return
	}
	if useAsm {
		gemmNNPackedAsm(m, n, k, a, lda, bp, c, ldc, accumulate)
		return
	}
	gemmNNPackedGo(m, n, k, a, lda, bp, c, ldc, accumulate)
}

// GemmNNPacked64 is the float64 version of GemmNNPacked32 (plain float64
// arithmetic, the summation order of GemmNN64).
func GemmNNPacked64(m, n, k int, a []float64, lda int, bp []float64, c []float64, ldc int, accumulate bool) {
	checkGemmPacked("GemmNNPacked64", m, n, k, len(a), lda, len(bp), len(c), ldc)
	if gemmTrivial(m, n, k, c, ldc, accumulate) {
		return
	}
	for i := 0; i < m; i++ {
		cr := c[i*ldc : i*ldc+n]
		if !accumulate {
			clear(cr)
		}
		ar := a[i*lda : i*lda+k]
		for j0 := 0; j0 < n; j0 += gemmNR {
			cj := cr[j0:min(j0+gemmNR, n)]
			panel := bp[j0*k : (j0+gemmNR)*k]
			for p, av := range ar {
				br := panel[p*gemmNR : p*gemmNR+len(cj)]
				for j, bv := range br {
					cj[j] += av * bv
				}
			}
		}
	}
}

func checkGemmPacked(name string, m, n, k, la, lda, lbp, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	checkMat(name, "A", la, lda, m, k)
	checkMat(name, "C", lc, ldc, m, n)
	if lbp < PackedLen(k, n) {
		panic("kern: " + name + ": packed B too short")
	}
}

// gemmNNPackedAsm runs the in-place-A kernels of gemm32Asm on the packed
// panels (row stride 16).
func gemmNNPackedAsm(m, n, k int, a []float32, lda int, bp []float32, c []float32, ldc int, acc bool) {
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		accP := acc || p0 > 0
		ap := &a[p0]
		for j0 := 0; j0 < n; j0 += gemmNR {
			nb := min(gemmNR, n-j0)
			b := &bp[j0*k+p0*gemmNR]
			cp := &c[j0]
			switch {
			case nb == gemmNR:
				sgemmNN16(m, kb, ap, lda, b, gemmNR, cp, ldc, nil, accP)
			case nb > 8:
				sgemmNN16m(m, kb, ap, lda, b, gemmNR, cp, ldc, &maskTab[16-nb], accP)
			default:
				sgemmNN8m(m, kb, ap, lda, b, gemmNR, cp, ldc, &maskTab[8-nb], accP)
			}
		}
	}
}

// gemmNNPackedGo is the pure-Go version: per 16-column panel and k block,
// 2×4 register tiles as in gemm32Go, reading B from the panel.
func gemmNNPackedGo(m, n, k int, a []float32, lda int, bp []float32, c []float32, ldc int, acc bool) {
	var pb [gemmKC * 4]float32
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		accP := acc || p0 > 0
		for j0 := 0; j0 < n; j0 += 4 {
			nb := min(4, n-j0)
			// Gather the 4 columns from the panel (zero-padded there).
			q0, jj := j0/gemmNR*gemmNR, j0%gemmNR
			panel := bp[q0*k+p0*gemmNR : q0*k+(p0+kb)*gemmNR]
			for p := 0; p < kb; p++ {
				copy(pb[p*4:p*4+4], panel[p*gemmNR+jj:p*gemmNR+jj+4])
			}
			for i0 := 0; i0 < m; i0 += 2 {
				mb := min(2, m-i0)
				var t [8]float32
				if mb == 2 {
					t = tileNN32(a[i0*lda+p0:], lda, pb[:kb*4])
				} else {
					ar := a[i0*lda+p0 : i0*lda+p0+kb]
					for p, av := range ar {
						bq := pb[p*4 : p*4+4]
						t[0] += av * bq[0]
						t[1] += av * bq[1]
						t[2] += av * bq[2]
						t[3] += av * bq[3]
					}
				}
				storeTile(c[i0*ldc+j0:], ldc, mb, nb, &t, accP)
			}
		}
	}
}
