package kern

import (
	"math"
	"math/rand/v2"
	"testing"
)

// paths runs f once per implementation available on this machine: the
// assembly kernels (when compiled in and supported by the CPU) and the
// pure-Go fallback, restoring useAsm afterwards. Tests using it must not
// call t.Parallel.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAsm
	defer func() { useAsm = saved }()
	if saved {
		useAsm = true
		t.Run("asm", f)
	} else if hasAsm {
		t.Log("assembly compiled in but CPU lacks AVX2/FMA: asm path not tested")
	}
	useAsm = false
	t.Run("go", f)
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

func randSlice32(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((2*r.Float64() - 1) * scale)
	}
	return s
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func fill32(x []float32, v float32) {
	for i := range x {
		x[i] = v
	}
}

func isNaN32(x float32) bool { return x != x }

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	d := math.Abs(got - want)
	if want == 0 {
		return math.Inf(1)
	}
	return d / math.Abs(want)
}

// mustPanic reports an error naming what unless f panics.
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}
