package kern

import "math"

// Constants of the tanh approximation of GELU, shared with the assembly
// (see _asm/asm.go).
const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// GELU32 sets t[i] = tanh(c·u[i]·(1 + a·u[i]²)) and f[i] = ½·u[i]·(1 + t[i])
// for every i < len(u), the tanh approximation of GELU (Hendrycks and
// Gimpel 2016) with c = √(2/π), a = 0.044715; GELUBack32 reads t. The
// tanh is Tanh32's (see Accuracy). It panics if f or t is shorter than u;
// none may overlap.
func GELU32(f, t, u []float32) {
	n := len(u)
	if len(f) < n || len(t) < n {
		panic("kern: GELU32: length mismatch")
	}
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		gelu32(&f[0], &t[0], &u[0], i)
	}
	for ; i < n; i++ {
		v := u[i]
		th := tanhF32(geluC * (v * (1 + geluA*(v*v))))
		t[i] = th
		f[i] = 0.5 * v * (1 + th)
	}
}

// GELUBack32 replaces the gradient df[i] of GELU's output by that of its
// input u[i], for every i < len(df), with t from GELU32:
//
//	df·(½·(1 + t) + ½·u·(1 − t²)·c·(1 + 3a·u²))
//
// It panics if u or t is shorter than df.
func GELUBack32(df, u, t []float32) {
	n := len(df)
	if len(u) < n || len(t) < n {
		panic("kern: GELUBack32: length mismatch")
	}
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		geluBack32(&df[0], &u[0], &t[0], i)
	}
	for ; i < n; i++ {
		v, th := u[i], t[i]
		df[i] *= 0.5 * ((1 + th) + v*((1-th*th)*(geluC*(1+3*geluA*(v*v)))))
	}
}

// GELU64 is the float64 version of GELU32, using math.Tanh.
func GELU64(f, t, u []float64) {
	if len(f) < len(u) || len(t) < len(u) {
		panic("kern: GELU64: length mismatch")
	}
	for i, v := range u {
		th := math.Tanh(geluC * v * (1 + geluA*v*v))
		t[i] = th
		f[i] = 0.5 * v * (1 + th)
	}
}

// GELUBack64 is the float64 version of GELUBack32.
func GELUBack64(df, u, t []float64) {
	if len(u) < len(df) || len(t) < len(df) {
		panic("kern: GELUBack64: length mismatch")
	}
	for i, v := range u[:len(df)] {
		th := t[i]
		df[i] *= 0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*geluA*v*v)
	}
}

// LayerNorm32 normalises the row x, with n = len(g) elements: with its
// mean m and variance v (divided by n), r = 1/√(v + eps),
// xh = (x − m)·r and y = xh·g + b. It returns r; LayerNormBack32 reads xh
// and r. It panics if x, b, y or xh is shorter than g; y may be x.
func LayerNorm32(x, g, b, y, xh []float32, eps float32) float32 {
	n := len(g)
	if len(x) < n || len(b) < n || len(y) < n || len(xh) < n {
		panic("kern: LayerNorm32: length mismatch")
	}
	if n == 0 {
		return 0
	}
	if useAsm && n%8 == 0 {
		return layerNormRow32(&x[0], &y[0], &xh[0], &g[0], &b[0], n, 1/float32(n), eps)
	}
	return layerNorm(x, g, b, y, xh, eps)
}

// layerNorm is LayerNorm32 and LayerNorm64 in scalar Go.
func layerNorm[T float32 | float64](x, g, b, y, xh []T, eps T) T {
	n := len(g)
	invn := 1 / T(n)
	var m, v T
	for _, xv := range x[:n] {
		m += xv
	}
	m *= invn
	for _, xv := range x[:n] {
		v += (xv - m) * (xv - m)
	}
	r := 1 / T(math.Sqrt(float64(v*invn+eps)))
	for i, xv := range x[:n] {
		h := (xv - m) * r
		xh[i] = h
		y[i] = h*g[i] + b[i]
	}
	return r
}

// LayerNormBack32 adds the gradients of a row of LayerNorm32 from that of
// its output dy: dg += dy·xh, db += dy and
//
//	dx += r·(ĝ − mean(ĝ) − xh·mean(ĝ·xh)),  ĝ = dy·g
//
// over n = len(g) elements. It panics if a slice is shorter than g.
func LayerNormBack32(dy, g, xh, dg, db, dx []float32, r float32) {
	n := len(g)
	if len(dy) < n || len(xh) < n || len(dg) < n || len(db) < n || len(dx) < n {
		panic("kern: LayerNormBack32: length mismatch")
	}
	if n == 0 {
		return
	}
	if useAsm && n%8 == 0 {
		layerNormBackRow32(&dy[0], &g[0], &xh[0], &dg[0], &db[0], &dx[0], n, r, 1/float32(n))
		return
	}
	layerNormBack(dy, g, xh, dg, db, dx, r)
}

// layerNormBack is LayerNormBack32 and LayerNormBack64 in scalar Go.
func layerNormBack[T float32 | float64](dy, g, xh, dg, db, dx []T, r T) {
	n := len(g)
	invn := 1 / T(n)
	var s1, s2 T
	for i, d := range dy[:n] {
		dg[i] += d * xh[i]
		db[i] += d
		gh := d * g[i]
		s1 += gh
		s2 += gh * xh[i]
	}
	s1 *= invn
	s2 *= invn
	for i, d := range dy[:n] {
		dx[i] += r * (d*g[i] - s1 - xh[i]*s2)
	}
}

// LayerNorm64 is the float64 version of LayerNorm32.
func LayerNorm64(x, g, b, y, xh []float64, eps float64) float64 {
	n := len(g)
	if len(x) < n || len(b) < n || len(y) < n || len(xh) < n {
		panic("kern: LayerNorm64: length mismatch")
	}
	return layerNorm(x, g, b, y, xh, eps)
}

// LayerNormBack64 is the float64 version of LayerNormBack32.
func LayerNormBack64(dy, g, xh, dg, db, dx []float64, r float64) {
	n := len(g)
	if len(dy) < n || len(xh) < n || len(dg) < n || len(db) < n || len(dx) < n {
		panic("kern: LayerNormBack64: length mismatch")
	}
	layerNormBack(dy, g, xh, dg, db, dx, r)
}
