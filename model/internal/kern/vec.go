package kern

// Axpy32 sets y[i] += alpha*x[i]. It panics if len(x) != len(y). x and y
// must not overlap unless they are the same slice.
func Axpy32(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic("kern: Axpy32: length mismatch")
	}
	if len(x) == 0 {
		return
	}
	if useAsm {
		axpy32(alpha, &x[0], &y[0], len(x))
		return
	}
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Scale32 sets x[i] *= alpha.
func Scale32(alpha float32, x []float32) {
	if len(x) == 0 {
		return
	}
	if useAsm {
		scale32(alpha, &x[0], len(x))
		return
	}
	for i := range x {
		x[i] *= alpha
	}
}

// SqNorm32 returns the sum of x[i]², accumulated in float64 (for
// gradient-norm clipping: the norm is math.Sqrt of the sum over all
// parameter slices).
func SqNorm32(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	if useAsm {
		return sqnorm32(&x[0], len(x))
	}
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		a, b, c, d := float64(v[0]), float64(v[1]), float64(v[2]), float64(v[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// AddBias32 adds bias[j] to c[i*ldc+j] for i < m, j < n (broadcast of a row
// vector over the rows of C). It panics if ldc < n, len(bias) < n or c is
// shorter than (m-1)*ldc+n.
func AddBias32(c, bias []float32, m, n, ldc int) {
	checkRows("AddBias32", len(c), m, n, ldc, len(bias))
	if m == 0 || n == 0 {
		return
	}
	for i := 0; i < m; i++ {
		Axpy32(1, bias[:n], c[i*ldc:i*ldc+n])
	}
}

// SumRows32 sets dst[j] = sum_i a[i*lda+j] for j < n over i < m, or adds
// that sum to dst when accumulate is true (the bias gradient: the column
// sums of the pre-activation gradient). It panics if lda < n,
// len(dst) < n or a is shorter than (m-1)*lda+n. dst must not overlap a.
func SumRows32(dst, a []float32, m, n, lda int, accumulate bool) {
	checkRows("SumRows32", len(a), m, n, lda, len(dst))
	if n == 0 {
		return
	}
	if !accumulate {
		clear(dst[:n])
	}
	for i := 0; i < m; i++ {
		Axpy32(1, a[i*lda:i*lda+n], dst[:n])
	}
}

func checkRows(name string, l, m, n, ld, lv int) {
	if m < 0 || n < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	if ld < 1 || ld < n {
		panic("kern: " + name + ": bad leading dimension")
	}
	if lv < n {
		panic("kern: " + name + ": vector too short")
	}
	if m > 0 && n > 0 && l < (m-1)*ld+n {
		panic("kern: " + name + ": matrix too short")
	}
}

// Axpy64 sets y[i] += alpha*x[i]. It panics if len(x) != len(y).
func Axpy64(alpha float64, x, y []float64) {
	if len(x) != len(y) {
		panic("kern: Axpy64: length mismatch")
	}
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Scale64 sets x[i] *= alpha.
func Scale64(alpha float64, x []float64) {
	for i := range x {
		x[i] *= alpha
	}
}

// SqNorm64 returns the sum of x[i]².
func SqNorm64(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s
}

// AddBias64 is the float64 version of AddBias32.
func AddBias64(c, bias []float64, m, n, ldc int) {
	checkRows("AddBias64", len(c), m, n, ldc, len(bias))
	if m == 0 || n == 0 {
		return
	}
	for i := 0; i < m; i++ {
		Axpy64(1, bias[:n], c[i*ldc:i*ldc+n])
	}
}

// SumRows64 is the float64 version of SumRows32.
func SumRows64(dst, a []float64, m, n, lda int, accumulate bool) {
	checkRows("SumRows64", len(a), m, n, lda, len(dst))
	if n == 0 {
		return
	}
	if !accumulate {
		clear(dst[:n])
	}
	for i := 0; i < m; i++ {
		Axpy64(1, a[i*lda:i*lda+n], dst[:n])
	}
}
