package kern

import (
	"math"
	"testing"
)

// actSweep returns the test inputs: a uniform grid over [-100, 100], a dense
// grid near 0 and around the branch points, and special values.
func actSweep() []float32 {
	var xs []float32
	const n = 400_000
	for i := 0; i <= n; i++ {
		xs = append(xs, float32(-100+200*float64(i)/n))
	}
	for i := -20000; i <= 20000; i++ {
		xs = append(xs, float32(i)*1e-4)                                           // [-2, 2]
		xs = append(xs, 0.625+float32(i)*1e-7)                                     // tanh branch point
		xs = append(xs, float32(i)*1e-9)                                           // tiny
		xs = append(xs, -87.3+float32(i)*1e-5)                                     // sigmoid flush point
		xs = append(xs, float32(math.Copysign(43.65, float64(i)))+float32(i)*1e-6) // tanh flush point
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-38, -1e-38,
		1e30, -1e30, 88.7, -88.7, 89, -89, 104, -104)
	return xs
}

type errStats struct {
	maxAbs, maxRel float64
	atAbs, atRel   float32
}

func (s *errStats) add(x float32, got float32, want float64, relFloor float64) {
	d := math.Abs(float64(got) - want)
	if d > s.maxAbs {
		s.maxAbs, s.atAbs = d, x
	}
	if math.Abs(want) >= relFloor {
		if r := d / math.Abs(want); r > s.maxRel {
			s.maxRel, s.atRel = r, x
		}
	}
}

func TestActivationAccuracy(t *testing.T) {
	xs := actSweep()
	// Pad to a non-multiple of 8 so the scalar tail is also exercised.
	xs = append(xs, 0.3, -0.7, 5)
	paths(t, func(t *testing.T) {
		sig := make([]float32, len(xs))
		th := make([]float32, len(xs))
		Sigmoid32(sig, xs)
		Tanh32(th, xs)
		var ss, ts errStats
		for i, x := range xs {
			ws := 1 / (1 + math.Exp(-float64(x)))
			wt := math.Tanh(float64(x))
			// sigmoid(x) for x < -87.3 is below 1.2e-38 and flushed to 0;
			// relative error is measured where the result is not flushed.
			ss.add(x, sig[i], ws, 1.3e-38)
			ts.add(x, th[i], wt, 0)
			if isNaN32(sig[i]) || math.IsInf(float64(sig[i]), 0) || isNaN32(th[i]) || math.IsInf(float64(th[i]), 0) {
				t.Fatalf("non-finite output for finite x=%g: sigmoid %v tanh %v", x, sig[i], th[i])
			}
			if sig[i] < 0 || sig[i] > 1 || th[i] < -1 || th[i] > 1 {
				t.Fatalf("output out of range for x=%g: sigmoid %v tanh %v", x, sig[i], th[i])
			}
		}
		t.Logf("sigmoid32: max abs err %.3g (x=%g), max rel err %.3g (x=%g) over %d inputs", ss.maxAbs, ss.atAbs, ss.maxRel, ss.atRel, len(xs))
		t.Logf("tanh32:    max abs err %.3g (x=%g), max rel err %.3g (x=%g)", ts.maxAbs, ts.atAbs, ts.maxRel, ts.atRel)
		if ss.maxRel > 1e-6 || ss.maxAbs > 1e-6 {
			t.Errorf("sigmoid32 error too large")
		}
		if ts.maxRel > 1e-6 || ts.maxAbs > 1e-6 {
			t.Errorf("tanh32 error too large")
		}
	})
}

func TestActivationSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	cases := []struct {
		x, sig, tanh float32
	}{
		{inf, 1, 1},
		{-inf, 0, -1},
		{0, 0.5, 0},
		{negZero, 0.5, negZero},
		{100, 1, 1},
		{-100, 0, -1},
		{math.MaxFloat32, 1, 1},
		{-math.MaxFloat32, 0, -1},
	}
	paths(t, func(t *testing.T) {
		// Replicate each value across a full vector plus a scalar tail.
		for _, tc := range cases {
			x := make([]float32, 11)
			fill32(x, tc.x)
			s := make([]float32, 11)
			th := make([]float32, 11)
			Sigmoid32(s, x)
			Tanh32(th, x)
			for i := range x {
				if s[i] != tc.sig {
					t.Errorf("sigmoid(%v)[%d] = %v, want %v", tc.x, i, s[i], tc.sig)
				}
				if th[i] != tc.tanh || math.Signbit(float64(th[i])) != math.Signbit(float64(tc.tanh)) {
					t.Errorf("tanh(%v)[%d] = %v, want %v", tc.x, i, th[i], tc.tanh)
				}
			}
		}
		x := make([]float32, 11)
		fill32(x, nan)
		x[3] = -nan
		s := make([]float32, 11)
		Sigmoid32(s, x)
		Tanh32(x, x) // in place
		for i := range x {
			if !isNaN32(s[i]) || !isNaN32(x[i]) {
				t.Errorf("NaN not propagated at %d: sigmoid %v tanh %v", i, s[i], x[i])
			}
		}
	})
}

func TestActivation64(t *testing.T) {
	xs := []float64{-800, -40, -1, -1e-9, 0, 1e-9, 0.5, 3, 40, 800, math.Inf(1), math.Inf(-1)}
	s := make([]float64, len(xs))
	th := make([]float64, len(xs))
	Sigmoid64(s, xs)
	Tanh64(th, xs)
	for i, x := range xs {
		if w := 1 / (1 + math.Exp(-x)); s[i] != w {
			t.Errorf("Sigmoid64(%v) = %v, want %v", x, s[i], w)
		}
		if w := math.Tanh(x); th[i] != w {
			t.Errorf("Tanh64(%v) = %v, want %v", x, th[i], w)
		}
	}
	Sigmoid64(s[:1], []float64{math.NaN()})
	if !math.IsNaN(s[0]) {
		t.Errorf("Sigmoid64(NaN) = %v", s[0])
	}
}
