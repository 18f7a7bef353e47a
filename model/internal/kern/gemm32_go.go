package kern

// Pure-Go float32 GEMM, used when the assembly kernels are unavailable.
// B is packed per k block into 4-column panels on the stack; C is computed
// in 2×4 register tiles.

func gemm32Go(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	var pb [gemmKC * 4]float32
	for p0 := 0; p0 < k; p0 += gemmKC {
		kb := min(gemmKC, k-p0)
		accP := acc || p0 > 0
		for j0 := 0; j0 < n; j0 += 4 {
			nb := min(4, n-j0)
			packGo(pb[:kb*4], tb, b, ldb, p0, j0, kb, nb)
			for i0 := 0; i0 < m; i0 += 2 {
				mb := min(2, m-i0)
				var t [8]float32
				switch {
				case mb == 2 && ta:
					t = tileTN32(a[p0*lda+i0:], lda, pb[:kb*4])
				case mb == 2:
					t = tileNN32(a[i0*lda+p0:], lda, pb[:kb*4])
				default:
					for r := 0; r < mb; r++ {
						for p := 0; p < kb; p++ {
							var av float32
							if ta {
								av = a[(p0+p)*lda+i0+r]
							} else {
								av = a[(i0+r)*lda+p0+p]
							}
							bp := pb[p*4 : p*4+4]
							t[r*4+0] += av * bp[0]
							t[r*4+1] += av * bp[1]
							t[r*4+2] += av * bp[2]
							t[r*4+3] += av * bp[3]
						}
					}
				}
				storeTile(c[i0*ldc+j0:], ldc, mb, nb, &t, accP)
			}
		}
	}
}

// packGo packs op(B)[p0:p0+kb, j0:j0+nb] into dst[p*4+jj], zero-padding
// columns jj >= nb.
func packGo(dst []float32, tb bool, b []float32, ldb, p0, j0, kb, nb int) {
	for p := 0; p < kb; p++ {
		d := dst[p*4 : p*4+4]
		for jj := 0; jj < 4; jj++ {
			var v float32
			if jj < nb {
				if tb {
					v = b[(j0+jj)*ldb+p0+p]
				} else {
					v = b[(p0+p)*ldb+j0+jj]
				}
			}
			d[jj] = v
		}
	}
}

// tileNN32 returns the 2×4 tile sum_p A[r, p]*pb[p*4+j] where row r of A
// starts at a[r*lda]. (2×4 keeps all accumulators in registers on amd64.)
func tileNN32(a []float32, lda int, pb []float32) [8]float32 {
	kb := len(pb) / 4
	a0 := a[:kb]
	a1 := a[lda:][:kb]
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	for p := range a0 {
		bp := pb[p*4 : p*4+4 : p*4+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		x, y := a0[p], a1[p]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		c10 += y * b0
		c11 += y * b1
		c12 += y * b2
		c13 += y * b3
	}
	return [8]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// tileTN32 returns the 2×4 tile sum_p A[p, r]*pb[p*4+j] where row p of A
// starts at a[p*lda].
func tileTN32(a []float32, lda int, pb []float32) [8]float32 {
	kb := len(pb) / 4
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	for p := 0; p < kb; p++ {
		bp := pb[p*4 : p*4+4 : p*4+4]
		ap := a[p*lda : p*lda+2 : p*lda+2]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		x, y := ap[0], ap[1]
		c00 += x * b0
		c01 += x * b1
		c02 += x * b2
		c03 += x * b3
		c10 += y * b0
		c11 += y * b1
		c12 += y * b2
		c13 += y * b3
	}
	return [8]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// storeTile writes (or, with acc, adds) the top-left mb×nb part of a 2×4
// register tile t to C, whose rows are ldc apart starting at c.
func storeTile(c []float32, ldc, mb, nb int, t *[8]float32, acc bool) {
	for r := 0; r < mb; r++ {
		cr := c[r*ldc:][:nb]
		for j := range cr {
			if acc {
				cr[j] += t[r*4+j]
			} else {
				cr[j] = t[r*4+j]
			}
		}
	}
}
