package kern

import (
	"fmt"
	"math"
	"testing"
)

var gemmSizes = []int{1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 74, 128, 256, 413}

type gemmOp int

const (
	opNN gemmOp = iota
	opNT
	opTN
	opNNP // PackB then GemmNNPacked, B stored k×n
	opNTP // PackB (trans) then GemmNNPacked, B stored n×k
)

func (o gemmOp) String() string { return [...]string{"NN", "NT", "TN", "NNP", "NTP"}[o] }

var allGemmOps = []gemmOp{opNN, opNT, opTN, opNNP, opNTP}

// storedShape returns the stored shapes (rows, cols) of A and B.
func (o gemmOp) storedShape(m, n, k int) (ar, ac, br, bc int) {
	switch o {
	case opNN, opNNP:
		return m, k, k, n
	case opNT, opNTP:
		return m, k, n, k
	default:
		return k, m, k, n
	}
}

// refGemm computes C (+)= op(A)·op(B) in float64 and, in bound, the sum of
// |a||b| per element (the scale of the rounding error).
func refGemm(o gemmOp, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) (want, bound []float64) {
	want = make([]float64, m*n)
	bound = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sb float64
			for p := 0; p < k; p++ {
				var av, bv float32
				switch o {
				case opNN, opNNP:
					av, bv = a[i*lda+p], b[p*ldb+j]
				case opNT, opNTP:
					av, bv = a[i*lda+p], b[j*ldb+p]
				default:
					av, bv = a[p*lda+i], b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
				sb += math.Abs(float64(av) * float64(bv))
			}
			if acc {
				s += float64(c[i*ldc+j])
				sb += math.Abs(float64(c[i*ldc+j]))
			}
			want[i*n+j] = s
			bound[i*n+j] = sb
		}
	}
	return want, bound
}

func callGemm32(o gemmOp, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
	switch o {
	case opNN:
		GemmNN32(m, n, k, a, lda, b, ldb, c, ldc, acc)
	case opNT:
		GemmNT32(m, n, k, a, lda, b, ldb, c, ldc, acc)
	case opNNP, opNTP:
		bp := packBuf32(PackedLen(k, n))
		PackB32(bp, b, k, n, ldb, o == opNTP)
		GemmNNPacked32(m, n, k, a, lda, bp, c, ldc, acc)
	default:
		GemmTN32(m, n, k, a, lda, b, ldb, c, ldc, acc)
	}
}

func callGemm64(o gemmOp, m, n, k int, a []float64, lda int, b []float64, ldb int, c []float64, ldc int, acc bool) {
	switch o {
	case opNN:
		GemmNN64(m, n, k, a, lda, b, ldb, c, ldc, acc)
	case opNT:
		GemmNT64(m, n, k, a, lda, b, ldb, c, ldc, acc)
	case opNNP, opNTP:
		bp := make([]float64, PackedLen(k, n))
		for i := range bp {
			bp[i] = math.NaN() // padding must be written
		}
		PackB64(bp, b, k, n, ldb, o == opNTP)
		GemmNNPacked64(m, n, k, a, lda, bp, c, ldc, acc)
	default:
		GemmTN64(m, n, k, a, lda, b, ldb, c, ldc, acc)
	}
}

type gemmCase struct {
	m, n, k          int
	padA, padB, padC int
	acc              bool
}

// gemmCases covers every size of gemmSizes as m, n and k, every (m, n) pair
// (with k cycling through the list), padded and unpadded leading dimensions
// and both accumulate modes, while bounding the reference cost.
func gemmCases(short bool) []gemmCase {
	var cs []gemmCase
	for i, m := range gemmSizes {
		for j, n := range gemmSizes {
			k := gemmSizes[(i*7+j*3)%len(gemmSizes)]
			limit := 6_000_000
			if short {
				limit = 600_000
			}
			for m*n*k > limit && k > 1 {
				k = k/2 + 1
			}
			pad := (i + j) % 3 // 0, 1 or 2 -> pads 0, 3, 16
			pads := [...]int{0, 3, 16}[pad]
			cs = append(cs, gemmCase{m, n, k, pads, [...]int{0, 5, 1}[pad], [...]int{0, 1, 7}[pad], (i+j)%2 == 0})
		}
	}
	// Every k against a few awkward (m, n).
	for _, k := range gemmSizes {
		for _, mn := range [][2]int{{7, 17}, {13, 74}, {65, 9}} {
			cs = append(cs, gemmCase{mn[0], mn[1], k, 1, 0, 2, k%2 == 1})
			cs = append(cs, gemmCase{mn[0], mn[1], k, 0, 3, 0, k%2 == 0})
		}
	}
	// Large-k (several k blocks) and zero-size cases.
	cs = append(cs,
		gemmCase{13, 33, 600, 2, 2, 2, false},
		gemmCase{6, 16, 513, 0, 0, 0, true},
		gemmCase{0, 5, 3, 0, 0, 0, false},
		gemmCase{5, 0, 3, 0, 0, 0, false},
		gemmCase{5, 7, 0, 0, 0, 0, false},
		gemmCase{5, 7, 0, 0, 0, 0, true},
	)
	return cs
}

const guard = 9 // sentinel elements after each matrix

func TestGemm32(t *testing.T) {
	cases := gemmCases(testing.Short() || raceEnabled)
	paths(t, func(t *testing.T) {
		r := newRand(1)
		for _, o := range allGemmOps {
			worst := 0.0
			for _, tc := range cases {
				m, n, k := tc.m, tc.n, tc.k
				ar, ac, br, bc := o.storedShape(m, n, k)
				lda, ldb, ldc := max(ac, 1)+tc.padA, max(bc, 1)+tc.padB, max(n, 1)+tc.padC
				a := randSlice32(r, ar*lda+guard, 1)
				b := randSlice32(r, br*ldb+guard, 1)
				c := randSlice32(r, m*ldc+guard, 1)
				// Gaps and guard must stay untouched.
				sentinel := float32(12345.5)
				for i := 0; i < m; i++ {
					fill32(c[i*ldc+n:min((i+1)*ldc, len(c))], sentinel)
				}
				fill32(c[m*ldc:], sentinel)
				if !tc.acc {
					// C is write-only: garbage (NaN) must not leak in.
					for i := 0; i < m; i++ {
						fill32(c[i*ldc:i*ldc+n], float32(math.NaN()))
					}
				}
				want, bound := refGemm(o, m, n, k, a, lda, b, ldb, c, ldc, tc.acc)
				callGemm32(o, m, n, k, a[:len(a)-guard], lda, b[:len(b)-guard], ldb, c[:len(c)-guard], ldc, tc.acc)
				name := fmt.Sprintf("%v m=%d n=%d k=%d lda=%d ldb=%d ldc=%d acc=%v", o, m, n, k, lda, ldb, ldc, tc.acc)
				for i := 0; i < m; i++ {
					for j := 0; j < ldc && i*ldc+j < len(c); j++ {
						got := c[i*ldc+j]
						if j >= n {
							if got != sentinel {
								t.Fatalf("%s: wrote outside C at (%d,%d)", name, i, j)
							}
							continue
						}
						w := want[i*n+j]
						tol := float64(k+2) * 1.2e-7 * bound[i*n+j]
						d := math.Abs(float64(got) - w)
						if !(d <= tol) {
							t.Fatalf("%s: C[%d,%d] = %v, want %v (|diff| %g > tol %g)", name, i, j, got, w, d, tol)
						}
						if bound[i*n+j] > 0 {
							worst = max(worst, d/(float64(k+2)*1.2e-7*bound[i*n+j]))
						}
					}
				}
				for _, v := range c[m*ldc:] {
					if v != sentinel {
						t.Fatalf("%s: wrote past the end of C", name)
					}
				}
			}
			t.Logf("%v: %d cases, worst error %.3f of the k-scaled bound", o, len(cases), worst)
		}
	})
}

func TestGemm64(t *testing.T) {
	r := newRand(2)
	for _, o := range allGemmOps {
		for _, tc := range gemmCases(true) {
			m, n, k := tc.m, tc.n, tc.k
			ar, ac, br, bc := o.storedShape(m, n, k)
			lda, ldb, ldc := max(ac, 1)+tc.padA, max(bc, 1)+tc.padB, max(n, 1)+tc.padC
			a := make([]float64, ar*lda)
			b := make([]float64, br*ldb)
			c := make([]float64, m*ldc)
			for i := range a {
				a[i] = 2*r.Float64() - 1
			}
			for i := range b {
				b[i] = 2*r.Float64() - 1
			}
			for i := range c {
				c[i] = 2*r.Float64() - 1
				if !tc.acc && i%ldc < n {
					c[i] = math.NaN()
				}
			}
			c0 := append([]float64(nil), c...)
			callGemm64(o, m, n, k, a, lda, b, ldb, c, ldc, tc.acc)
			for i := 0; i < m; i++ {
				for j := 0; j < ldc; j++ {
					got := c[i*ldc+j]
					if j >= n {
						if got != c0[i*ldc+j] {
							t.Fatalf("%v %+v: wrote outside C", o, tc)
						}
						continue
					}
					var s, sb float64
					for p := 0; p < k; p++ {
						var av, bv float64
						switch o {
						case opNN, opNNP:
							av, bv = a[i*lda+p], b[p*ldb+j]
						case opNT, opNTP:
							av, bv = a[i*lda+p], b[j*ldb+p]
						default:
							av, bv = a[p*lda+i], b[p*ldb+j]
						}
						s += av * bv
						sb += math.Abs(av * bv)
					}
					if tc.acc {
						s += c0[i*ldc+j]
						sb += math.Abs(c0[i*ldc+j])
					}
					if d := math.Abs(got - s); !(d <= float64(k+2)*2.3e-16*sb) {
						t.Fatalf("%v %+v: C[%d,%d] = %v, want %v", o, tc, i, j, got, s)
					}
				}
			}
		}
	}
}

func TestGemmPanics(t *testing.T) {
	a := make([]float32, 12)
	cases := []struct {
		name string
		f    func()
	}{
		{"negative", func() { GemmNN32(-1, 2, 2, a, 2, a, 2, a, 2, false) }},
		{"lda<k", func() { GemmNN32(2, 2, 3, a, 2, a, 2, a, 2, false) }},
		{"A short", func() { GemmNN32(3, 2, 4, a[:11], 4, a, 2, a, 2, false) }},
		{"B short NT", func() { GemmNT32(2, 3, 4, a, 4, a[:11], 4, a, 3, false) }},
		{"C short TN", func() { GemmTN32(3, 4, 2, a, 3, a, 4, a[:11], 4, false) }},
		{"TNSum A short", func() { GemmTNSum32(2, 2, 2, 3, a, 2, 5, a, 2, 0, a, 2, false) }},
		{"TNSum negative stride", func() { GemmTNSum32(2, 2, 2, 2, a, 2, -1, a, 2, 0, a, 2, false) }},
		{"packed B short", func() { GemmNNPacked32(2, 3, 2, a, 2, a[:31], a, 3, false) }},
		{"pack dst short", func() { PackB32(a[:11], a, 2, 3, 3, false) }},
		{"pack B short trans", func() { PackB32(make([]float32, 64), a[:11], 4, 3, 4, true) }},
		{"ldc<n 64", func() { GemmNN64(2, 3, 2, make([]float64, 9), 2, make([]float64, 9), 3, make([]float64, 9), 2, false) }},
	}
	for _, tc := range cases {
		mustPanic(t, tc.name, tc.f)
	}
}

func TestGemmNoAlloc(t *testing.T) {
	r := newRand(3)
	a := randSlice32(r, 413*413, 1)
	b := randSlice32(r, 413*413, 1)
	c := make([]float32, 413*413)
	paths(t, func(t *testing.T) {
		bp := make([]float32, PackedLen(256, 74))
		for _, o := range []gemmOp{opNN, opNT, opTN} {
			n := testing.AllocsPerRun(5, func() {
				callGemm32(o, 413, 74, 256, a, 413, b, 413, c, 413, true)
			})
			if n != 0 {
				t.Errorf("%v: %v allocs per call", o, n)
			}
		}
		n := testing.AllocsPerRun(5, func() {
			PackB32(bp, b, 256, 74, 413, true)
			GemmNNPacked32(413, 74, 256, a, 413, bp, c, 413, true)
		})
		if n != 0 {
			t.Errorf("packed: %v allocs per call", n)
		}
	})
}

// packBuf32 returns a reusable packing buffer of length n filled with NaN,
// so that unwritten padding shows up in the results.
func packBuf32(n int) []float32 {
	if cap(packScratch) < n {
		packScratch = make([]float32, n)
	}
	b := packScratch[:n]
	fill32(b, float32(math.NaN()))
	return b
}

var packScratch []float32

// TestGemmPackedMatchesUnpacked checks that the packed product gives
// bit-identical results to GemmNN32 and GemmNT32 on the same operands.
func TestGemmPackedMatchesUnpacked(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(4)
		for _, s := range [][3]int{{1, 1, 1}, {7, 17, 9}, {64, 256, 73}, {64, 64, 256}, {13, 40, 300}, {6, 8, 600}, {5, 100, 7}} {
			m, n, k := s[0], s[1], s[2]
			a := randSlice32(r, m*k, 1)
			for _, trans := range []bool{false, true} {
				var b []float32
				ldb := n + 3
				if trans {
					ldb = k + 5
					b = randSlice32(r, n*ldb, 1)
				} else {
					b = randSlice32(r, k*ldb, 1)
				}
				want := make([]float32, m*n)
				got := make([]float32, m*n)
				if trans {
					GemmNT32(m, n, k, a, k, b, ldb, want, n, false)
				} else {
					GemmNN32(m, n, k, a, k, b, ldb, want, n, false)
				}
				bp := packBuf32(PackedLen(k, n))
				PackB32(bp, b, k, n, ldb, trans)
				for q := 0; q*16 < n; q++ {
					for p := 0; p < k; p++ {
						for j := n - 16*q; j < 16; j++ {
							if v := bp[q*16*k+p*16+j]; v != 0 {
								t.Fatalf("m=%d n=%d k=%d trans=%v: padding %v at panel %d row %d col %d", m, n, k, trans, v, q, p, j)
							}
						}
					}
				}
				GemmNNPacked32(m, n, k, a, k, bp, got, n, false)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("m=%d n=%d k=%d trans=%v: C[%d] = %v, unpacked %v", m, n, k, trans, i, got[i], want[i])
					}
				}
			}
		}
	})
}

// TestGemmTNSum checks the segmented Aᵀ·B against a float64 reference on
// awkward shapes: segment lengths that do not divide the packing depth,
// more rows than one packed group, gaps between segments, both
// accumulate modes.
func TestGemmTNSum(t *testing.T) {
	type tc struct{ m, n, k, segs int }
	var cases []tc
	for _, s := range []int{0, 1, 2, 3, 5} {
		for _, mnk := range [][3]int{{1, 1, 1}, {7, 5, 7}, {73, 16, 64}, {13, 33, 129}, {140, 17, 50}, {6, 256, 29}, {12, 8, 0}} {
			cases = append(cases, tc{mnk[0], mnk[1], mnk[2], s})
		}
	}
	paths(t, func(t *testing.T) {
		r := newRand(5)
		for i, c := range cases {
			acc := i%2 == 0
			lda, ldb, ldc := c.m+i%3, c.n+(i+1)%3, c.n+i%2
			sa, sb := c.k*lda+i%5, c.k*ldb+3 // gaps between segments
			a := randSlice32(r, max(c.segs, 1)*sa+guard, 1)
			b := randSlice32(r, max(c.segs, 1)*sb+guard, 1)
			cm := randSlice32(r, c.m*ldc+guard, 1)
			const sentinel = float32(-777.25)
			for i := 0; i < c.m; i++ {
				fill32(cm[i*ldc+c.n:min((i+1)*ldc, len(cm))], sentinel)
				if !acc {
					fill32(cm[i*ldc:i*ldc+c.n], float32(math.NaN()))
				}
			}
			fill32(cm[c.m*ldc:], sentinel)
			want := make([]float64, c.m*c.n)
			bound := make([]float64, c.m*c.n)
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					var s, sb0 float64
					if acc {
						s, sb0 = float64(cm[i*ldc+j]), math.Abs(float64(cm[i*ldc+j]))
					}
					for g := 0; g < c.segs; g++ {
						for p := 0; p < c.k; p++ {
							v := float64(a[g*sa+p*lda+i]) * float64(b[g*sb+p*ldb+j])
							s += v
							sb0 += math.Abs(v)
						}
					}
					want[i*c.n+j], bound[i*c.n+j] = s, sb0
				}
			}
			c64 := to64(cm)
			GemmTNSum32(c.m, c.n, c.k, c.segs, a[:len(a)-guard], lda, sa, b[:len(b)-guard], ldb, sb, cm[:len(cm)-guard], ldc, acc)
			name := fmt.Sprintf("m=%d n=%d k=%d segs=%d acc=%v", c.m, c.n, c.k, c.segs, acc)
			for i := 0; i < c.m; i++ {
				for j := 0; j < ldc && i*ldc+j < len(cm); j++ {
					got := cm[i*ldc+j]
					if j >= c.n {
						if got != sentinel {
							t.Fatalf("%s: wrote outside C at (%d,%d)", name, i, j)
						}
						continue
					}
					tol := float64(c.k*c.segs+2) * 1.2e-7 * bound[i*c.n+j]
					if d := math.Abs(float64(got) - want[i*c.n+j]); !(d <= tol) {
						t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, got, want[i*c.n+j])
					}
				}
			}
			for _, v := range cm[c.m*ldc:] {
				if v != sentinel {
					t.Fatalf("%s: wrote past the end of C", name)
				}
			}
			// The float64 version on the same data.
			GemmTNSum64(c.m, c.n, c.k, c.segs, to64(a), lda, sa, to64(b), ldb, sb, c64, ldc, acc)
			for i := 0; i < c.m; i++ {
				for j := 0; j < c.n; j++ {
					w := want[i*c.n+j]
					if d := math.Abs(c64[i*ldc+j] - w); !(d <= 1e-13*(1+bound[i*c.n+j])) {
						t.Fatalf("%s: float64 C[%d,%d] = %v, want %v", name, i, j, c64[i*ldc+j], w)
					}
				}
			}
		}
	})
}
