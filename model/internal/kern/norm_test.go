package kern

import (
	"fmt"
	"math"
	"testing"
)

// TestGELU checks GELU32 and GELUBack32 on both paths against the float64
// versions, and those against the definition and a central difference.
func TestGELU(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(17)
		for _, n := range []int{1, 7, 8, 9, 16, 37, 128} {
			u := randSlice32(r, n, 6)
			df := randSlice32(r, n, 1)
			f, th := make([]float32, n), make([]float32, n)
			GELU32(f, th, u)
			u64, f64, t64 := to64(u), make([]float64, n), make([]float64, n)
			GELU64(f64, t64, u64)
			name := fmt.Sprintf("n=%d", n)
			gelu := func(v float64) float64 {
				return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
			}
			for i, v := range u64 {
				if d := math.Abs(f64[i] - gelu(v)); d > 1e-15*(1+math.Abs(v)) {
					t.Fatalf("%s: GELU64(%v) = %v, want %v", name, v, f64[i], gelu(v))
				}
			}
			maxDiff(t, name+" GELU32", to64(f), f64, 1e-6)
			maxDiff(t, name+" GELU32 tanh", to64(th), t64, 1e-6)
			d64 := to64(df)
			GELUBack64(d64, u64, t64)
			for i, v := range u64 {
				const h = 1e-6
				want := float64(df[i]) * (gelu(v+h) - gelu(v-h)) / (2 * h)
				if d := math.Abs(d64[i] - want); d > 1e-8*(1+math.Abs(want)) {
					t.Fatalf("%s: GELUBack64 at %v = %v, want %v", name, v, d64[i], want)
				}
			}
			GELUBack32(df, u, th)
			maxDiff(t, name+" GELUBack32", to64(df), d64, 1e-6)
		}
	})
}

// TestLayerNorm checks LayerNorm32 and LayerNormBack32 on both paths (the
// assembly takes rows of a multiple of 8) against the float64 versions,
// and those against the definition and central differences of
// Σ w·LayerNorm(x).
func TestLayerNorm(t *testing.T) {
	const eps = 1e-5
	paths(t, func(t *testing.T) {
		r := newRand(18)
		for _, n := range []int{1, 5, 8, 16, 24, 32, 40, 64} {
			name := fmt.Sprintf("n=%d", n)
			x, g, b := randSlice32(r, n, 3), randSlice32(r, n, 2), randSlice32(r, n, 1)
			dy := randSlice32(r, n, 1)
			x64, g64, b64, dy64 := to64(x), to64(g), to64(b), to64(dy)
			y64, xh64 := make([]float64, n), make([]float64, n)
			r64 := LayerNorm64(x64, g64, b64, y64, xh64, eps)
			ln := func(x []float64) []float64 {
				var m, v float64
				for _, xv := range x {
					m += xv / float64(n)
				}
				for _, xv := range x {
					v += (xv - m) * (xv - m) / float64(n)
				}
				y := make([]float64, n)
				for i, xv := range x {
					y[i] = (xv-m)/math.Sqrt(v+eps)*g64[i] + b64[i]
				}
				return y
			}
			maxDiff(t, name+" LayerNorm64", y64, ln(x64), 1e-13)
			dg64, db64, dx64 := make([]float64, n), make([]float64, n), make([]float64, n)
			LayerNormBack64(dy64, g64, xh64, dg64, db64, dx64, r64)
			for i := range x64 {
				const h = 1e-6
				obj := func(d float64) float64 {
					xp := append([]float64(nil), x64...)
					xp[i] += d
					var s float64
					for j, yv := range ln(xp) {
						s += dy64[j] * yv
					}
					return s
				}
				want := (obj(h) - obj(-h)) / (2 * h)
				if d := math.Abs(dx64[i] - want); d > 1e-7*(1+math.Abs(want)) {
					t.Fatalf("%s: dx64[%d] = %v, want %v", name, i, dx64[i], want)
				}
				if want := dy64[i] * xh64[i]; math.Abs(dg64[i]-want) > 1e-15 || db64[i] != dy64[i] {
					t.Fatalf("%s: dg64, db64 [%d] = %v, %v", name, i, dg64[i], db64[i])
				}
			}

			y, xh := make([]float32, n), make([]float32, n)
			r32 := LayerNorm32(x, g, b, y, xh, eps)
			maxDiff(t, name+" LayerNorm32", to64(y), y64, 2e-6)
			maxDiff(t, name+" LayerNorm32 xh", to64(xh), xh64, 2e-6)
			maxDiff(t, name+" LayerNorm32 r", []float64{float64(r32)}, []float64{r64}, 1e-6)
			dg, db, dx := make([]float32, n), make([]float32, n), make([]float32, n)
			fill32(dg, 1)
			fill32(db, 1)
			fill32(dx, 1)
			LayerNormBack32(dy, g, xh, dg, db, dx, r32)
			for i := range dg64 {
				dg64[i]++
				db64[i]++
				dx64[i]++
			}
			maxDiff(t, name+" LayerNormBack32 dg (added)", to64(dg), dg64, 2e-6)
			maxDiff(t, name+" LayerNormBack32 db (added)", to64(db), db64, 1e-6)
			maxDiff(t, name+" LayerNormBack32 dx (added)", to64(dx), dx64, 1e-5)
		}
	})
}

func TestNormPanics(t *testing.T) {
	s := make([]float32, 8)
	d := make([]float64, 8)
	for i, f := range []func(){
		func() { GELU32(s[:3], s, s) },
		func() { GELUBack32(s, s[:3], s) },
		func() { GELU64(d[:3], d, d) },
		func() { GELUBack64(d, d, d[:3]) },
		func() { LayerNorm32(s[:3], s, s, s, s, 1e-5) },
		func() { LayerNormBack32(s, s, s, s[:3], s, s, 1) },
		func() { LayerNorm64(d, d, d, d[:3], d, 1e-5) },
		func() { LayerNormBack64(d, d, d, d, d, d[:3], 1) },
	} {
		mustPanic(t, fmt.Sprint("case ", i), f)
	}
}

func TestNormNoAlloc(t *testing.T) {
	r := newRand(19)
	u, a, b, c, e := randSlice32(r, 128, 2), randSlice32(r, 128, 2), randSlice32(r, 128, 2), randSlice32(r, 128, 2), randSlice32(r, 128, 2)
	paths(t, func(t *testing.T) {
		for name, f := range map[string]func(){
			"GELU32":          func() { GELU32(a, b, u) },
			"GELUBack32":      func() { GELUBack32(c, u, b) },
			"LayerNorm32":     func() { LayerNorm32(u[:32], a[:32], b[:32], c[:32], e[:32], 1e-5) },
			"LayerNormBack32": func() { LayerNormBack32(u[:32], a[:32], e[:32], b[:32], c[:32], c[32:64], 0.5) },
			"Softmax32":       func() { Softmax32(e[:57]) },
		} {
			if n := testing.AllocsPerRun(3, f); n != 0 {
				t.Errorf("%s: %v allocs", name, n)
			}
		}
	})
}
