package kern

import (
	"fmt"
	"math"
	"testing"
)

var vecLens = []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 100, 1000, 4099}

func TestAdam(t *testing.T) {
	const lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.01
	paths(t, func(t *testing.T) {
		r := newRand(20)
		for _, n := range vecLens {
			p := randSlice32(r, n, 1)
			g := randSlice32(r, n, 1)
			m := randSlice32(r, n, 0.1)
			v := randSlice32(r, n, 0.01)
			for i := range v {
				v[i] = float32(math.Abs(float64(v[i])))
			}
			p64, g64, m64, v64 := to64(p), to64(g), to64(m), to64(v)
			// Independent float64 references for step t = 3, one with the
			// exact hyperparameters (for Adam64) and one with them rounded
			// to float32 as Adam32 sees them.
			const step = 3
			bc1, bc2 := 1-math.Pow(b1, step), 1-math.Pow(b2, step)
			r32 := func(x float64) float64 { return float64(float32(x)) }
			ref := func(lr, b1, b2, eps, wd, bc1, bc2 float64) (wp, wm, wv []float64) {
				wp, wm, wv = make([]float64, n), make([]float64, n), make([]float64, n)
				for i := range wp {
					wm[i] = b1*m64[i] + (1-b1)*g64[i]
					wv[i] = b2*v64[i] + (1-b2)*g64[i]*g64[i]
					wp[i] = p64[i] - lr*wd*p64[i] - lr*(wm[i]/bc1)/(math.Sqrt(wv[i]/bc2)+eps)
				}
				return
			}
			wp, _, _ := ref(lr, b1, b2, eps, wd, bc1, bc2)
			wp32, wm32, wv32 := ref(r32(lr), r32(b1), r32(b2), r32(eps), r32(wd), r32(bc1), r32(bc2))
			Adam32(p, g, m, v, lr, b1, b2, eps, wd, float32(bc1), float32(bc2))
			Adam64(p64, g64, m64, v64, lr, b1, b2, eps, wd, bc1, bc2)
			for i := range wp {
				if d := math.Abs(p64[i] - wp[i]); d > 1e-15 {
					t.Fatalf("n=%d: Adam64 p[%d] = %v, want %v", n, i, p64[i], wp[i])
				}
				// The update is ~lr; float32 rounding of p dominates.
				if d := math.Abs(float64(p[i]) - wp32[i]); d > 2e-7*(1+math.Abs(wp32[i])) {
					t.Fatalf("n=%d: Adam32 p[%d] = %v, want %v", n, i, p[i], wp32[i])
				}
				if d := math.Abs(float64(m[i]) - wm32[i]); d > 2e-7*(math.Abs(wm32[i])+0.2) { // |m| <= 0.1, |g| <= 1
					t.Fatalf("n=%d: m[%d] = %v, want %v", n, i, m[i], wm32[i])
				}
				if d := math.Abs(float64(v[i]) - wv32[i]); d > 2e-7*wv32[i] {
					t.Fatalf("n=%d: v[%d] = %v, want %v", n, i, v[i], wv32[i])
				}
			}
		}
	})
}

func TestVec32(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(21)
		for _, n := range vecLens {
			x := randSlice32(r, n, 1)
			y := randSlice32(r, n+1, 1)
			y0 := append([]float32(nil), y...)
			Axpy32(-0.75, x, y[:n])
			for i := 0; i < n; i++ {
				w := float64(y0[i]) - 0.75*float64(x[i])
				if math.Abs(float64(y[i])-w) > 2.4e-7*(math.Abs(w)+1) {
					t.Fatalf("Axpy32 n=%d: y[%d] = %v, want %v", n, i, y[i], w)
				}
			}
			if y[n] != y0[n] {
				t.Fatalf("Axpy32 n=%d wrote past the end", n)
			}
			y0 = append(y0[:0], y...)
			Scale32(1.5, y[:n])
			for i := 0; i < n; i++ {
				if y[i] != y0[i]*1.5 {
					t.Fatalf("Scale32 n=%d: y[%d] = %v, want %v", n, i, y[i], y0[i]*1.5)
				}
			}
			if y[n] != y0[n] {
				t.Fatalf("Scale32 n=%d wrote past the end", n)
			}
			var w float64
			for _, v := range x {
				w += float64(v) * float64(v)
			}
			if got := SqNorm32(x); math.Abs(got-w) > 1e-12*(w+1) {
				t.Fatalf("SqNorm32 n=%d = %v, want %v", n, got, w)
			}
		}
	})
}

func TestBiasRows(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(22)
		for _, mn := range [][3]int{{0, 5, 5}, {1, 1, 1}, {3, 7, 9}, {17, 64, 64}, {5, 256, 260}, {413, 74, 75}} {
			m, n, ld := mn[0], mn[1], mn[2]
			name := fmt.Sprint(mn)
			c := randSlice32(r, m*ld, 1)
			c0 := append([]float32(nil), c...)
			bias := randSlice32(r, n, 1)
			AddBias32(c, bias, m, n, ld)
			c64 := to64(c0)
			AddBias64(c64, to64(bias), m, n, ld)
			for i := 0; i < m; i++ {
				for j := 0; j < ld; j++ {
					k := i*ld + j
					want := c0[k]
					if j < n {
						want += bias[j]
					}
					if c[k] != want || float32(c64[k]) != want && j >= n {
						t.Fatalf("AddBias32 %s: c[%d,%d] = %v, want %v", name, i, j, c[k], want)
					}
				}
			}
			for _, acc := range []bool{false, true} {
				dst := randSlice32(r, n, 1)
				d64 := to64(dst)
				want := to64(dst)
				for j := range want {
					if !acc {
						want[j] = 0
					}
					for i := 0; i < m; i++ {
						want[j] += float64(c[i*ld+j])
					}
				}
				SumRows32(dst, c, m, n, ld, acc)
				SumRows64(d64, to64(c), m, n, ld, acc)
				for j := range want {
					if math.Abs(float64(dst[j])-want[j]) > float64(m+1)*1.2e-7*float64(m+1)*2 {
						t.Fatalf("SumRows32 %s acc=%v: dst[%d] = %v, want %v", name, acc, j, dst[j], want[j])
					}
					if math.Abs(d64[j]-want[j]) > 1e-12 {
						t.Fatalf("SumRows64 %s acc=%v: dst[%d] = %v, want %v", name, acc, j, d64[j], want[j])
					}
				}
			}
		}
	})
}

func TestVec64(t *testing.T) {
	x := []float64{1, -2, 3}
	y := []float64{0.5, 0.5, 0.5}
	Axpy64(2, x, y)
	Scale64(2, y)
	if y[0] != 5 || y[1] != -7 || y[2] != 13 {
		t.Errorf("Axpy64/Scale64: %v", y)
	}
	if SqNorm64(x) != 14 {
		t.Errorf("SqNorm64 = %v", SqNorm64(x))
	}
}

func TestVecPanics(t *testing.T) {
	s := make([]float32, 8)
	for i, f := range []func(){
		func() { Axpy32(1, s[:3], s[:4]) },
		func() { Adam32(s, s, s, s[:7], 0, 0, 0, 0, 0, 1, 1) },
		func() { AddBias32(s, s[:2], 2, 3, 4) },
		func() { SumRows32(s, s, 3, 3, 3, false) },
		func() { AddBias32(s, s, 2, 3, 2) },
		func() { Sigmoid32(s[:2], s[:3]) },
	} {
		mustPanic(t, fmt.Sprint("case ", i), f)
	}
}
