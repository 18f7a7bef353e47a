package kern

import (
	"fmt"
	"math"
	"testing"
)

// Scalar reference cell, written independently of the kernels.
func refSigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func refLSTMForward(z, cPrev []float64, b, hid int) (gates, c, h, tc []float64) {
	gates = make([]float64, 4*b*hid)
	c = make([]float64, b*hid)
	h = make([]float64, b*hid)
	tc = make([]float64, b*hid)
	for r := 0; r < b; r++ {
		for j := 0; j < hid; j++ {
			base := r * 4 * hid
			i := refSigmoid(z[base+j])
			f := refSigmoid(z[base+hid+j])
			g := math.Tanh(z[base+2*hid+j])
			o := refSigmoid(z[base+3*hid+j])
			gates[base+j], gates[base+hid+j], gates[base+2*hid+j], gates[base+3*hid+j] = i, f, g, o
			k := r*hid + j
			c[k] = f*cPrev[k] + i*g
			tc[k] = math.Tanh(c[k])
			h[k] = o * tc[k]
		}
	}
	return
}

func refLSTMBackward(gates, cPrev, tc, dh, dc []float64, b, hid int) (dz, dcPrev []float64) {
	dz = make([]float64, 4*b*hid)
	dcPrev = make([]float64, b*hid)
	for r := 0; r < b; r++ {
		for j := 0; j < hid; j++ {
			base := r * 4 * hid
			i, f, g, o := gates[base+j], gates[base+hid+j], gates[base+2*hid+j], gates[base+3*hid+j]
			k := r*hid + j
			// h = o*tanh(c), c = f*cPrev + i*g.
			dO := dh[k] * tc[k]
			dC := dc[k] + dh[k]*o*(1-tc[k]*tc[k])
			dz[base+j] = dC * g * i * (1 - i)
			dz[base+hid+j] = dC * cPrev[k] * f * (1 - f)
			dz[base+2*hid+j] = dC * i * (1 - g*g)
			dz[base+3*hid+j] = dO * o * (1 - o)
			dcPrev[k] = dC * f
		}
	}
	return
}

var lstmShapes = [][2]int{{1, 1}, {1, 8}, {3, 5}, {2, 13}, {5, 16}, {4, 24}, {7, 32}, {3, 37}, {17, 64}, {2, 70}}

func maxDiff(t *testing.T, what string, got []float64, want []float64, tol float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestLSTM64(t *testing.T) {
	r := newRand(10)
	for _, s := range lstmShapes {
		b, hid := s[0], s[1]
		z := to64(randSlice32(r, 4*b*hid, 4))
		cPrev := to64(randSlice32(r, b*hid, 2))
		dh := to64(randSlice32(r, b*hid, 1))
		dc := to64(randSlice32(r, b*hid, 1))
		wg, wc, wh, wt := refLSTMForward(z, cPrev, b, hid)
		c, h, tc := make([]float64, b*hid), make([]float64, b*hid), make([]float64, b*hid)
		LSTMForward64(z, cPrev, c, h, tc, b, hid)
		name := fmt.Sprintf("b=%d hid=%d", b, hid)
		maxDiff(t, name+" gates", z, wg, 1e-15)
		maxDiff(t, name+" c", c, wc, 1e-15)
		maxDiff(t, name+" h", h, wh, 1e-15)
		maxDiff(t, name+" tanhC", tc, wt, 1e-15)
		wdz, wdcp := refLSTMBackward(wg, cPrev, wt, dh, dc, b, hid)
		dz, dcp := make([]float64, 4*b*hid), make([]float64, b*hid)
		LSTMBackward64(z, cPrev, tc, dh, dc, dz, dcp, b, hid)
		maxDiff(t, name+" dz", dz, wdz, 1e-14)
		maxDiff(t, name+" dcPrev", dcp, wdcp, 1e-14)
		// Aliased form: dz over gates, dcPrev over dc.
		LSTMBackward64(z, cPrev, tc, dh, dc, z, dc, b, hid)
		maxDiff(t, name+" dz (aliased)", z, wdz, 1e-14)
		maxDiff(t, name+" dcPrev (aliased)", dc, wdcp, 1e-14)
	}
}

// TestLSTM32 checks the float32 kernels against the float64 ones, including
// the allowed in-place forms.
func TestLSTM32(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(11)
		for _, s := range lstmShapes {
			for _, alias := range []bool{false, true} {
				b, hid := s[0], s[1]
				name := fmt.Sprintf("b=%d hid=%d alias=%v", b, hid, alias)
				z := randSlice32(r, 4*b*hid, 4)
				cPrev := randSlice32(r, b*hid, 2)
				dh := randSlice32(r, b*hid, 1)
				dc := randSlice32(r, b*hid, 1)
				z64, cPrev64, dh64, dc64 := to64(z), to64(cPrev), to64(dh), to64(dc)
				wg, wc, wh, wt := refLSTMForward(z64, cPrev64, b, hid)

				c, h, tc := make([]float32, b*hid), make([]float32, b*hid), make([]float32, b*hid)
				cp := cPrev
				if alias {
					cp = append([]float32(nil), cPrev...)
					c = cp
				}
				LSTMForward32(z, cp, c, h, tc, b, hid)
				maxDiff(t, name+" gates", to64(z), wg, 1e-6)
				maxDiff(t, name+" c", to64(c), wc, 1e-6)
				maxDiff(t, name+" h", to64(h), wh, 1e-6)
				maxDiff(t, name+" tanhC", to64(tc), wt, 1e-6)

				// Backward from the float32 forward values; reference from
				// the same (rounded) inputs.
				wdz, wdcp := refLSTMBackward(to64(z), cPrev64, to64(tc), dh64, dc64, b, hid)
				dz, dcp := make([]float32, 4*b*hid), make([]float32, b*hid)
				if alias {
					dz, dcp = z, dc
				}
				LSTMBackward32(z, cPrev, tc, dh, dc, dz, dcp, b, hid)
				maxDiff(t, name+" dz", to64(dz), wdz, 1e-6)
				maxDiff(t, name+" dcPrev", to64(dcp), wdcp, 1e-6)
			}
		}
	})
}

func TestLSTMPanics(t *testing.T) {
	s := make([]float32, 8)
	for i, f := range []func(){
		func() { LSTMForward32(s[:7], s, s, s, s, 1, 2) },
		func() { LSTMForward32(s, s[:1], s, s, s, 1, 2) },
		func() { LSTMBackward32(s, s, s, s, s, s[:7], s, 1, 2) },
		func() { LSTMForward64(make([]float64, 3), nil, nil, nil, nil, 1, 1) },
		func() { LSTMForward32(s, s, s, s, s, -1, 2) },
		func() { LSTMForwardTo32(s[:7], s, s, s, s, s, 2, nil, 0, 1, 2) },
		func() { LSTMForwardTo32(s, s, s, s, s, s, 1, nil, 0, 2, 2) },     // ldh < hid
		func() { LSTMForwardTo32(s, s, s, s, s, s[:5], 4, nil, 0, 2, 2) }, // h short
		func() { LSTMForwardTo32(s, s, s, s, s, s, 2, s[:3], 2, 2, 2) },   // h2 short
		func() { LSTMForwardTo64(make([]float64, 8), nil, nil, nil, nil, nil, 1, nil, 0, 1, 2) },
	} {
		mustPanic(t, fmt.Sprint("case ", i), f)
	}
}

func TestLSTMNoAlloc(t *testing.T) {
	const b, hid = 413, 64
	r := newRand(12)
	z := randSlice32(r, 4*b*hid, 2)
	s := randSlice32(r, 8*b*hid, 1)
	st := func(i int) []float32 { return s[i*b*hid : (i+1)*b*hid] }
	dz := make([]float32, 4*b*hid)
	paths(t, func(t *testing.T) {
		if n := testing.AllocsPerRun(3, func() { LSTMForward32(z, st(0), st(1), st(2), st(3), b, hid) }); n != 0 {
			t.Errorf("LSTMForward32: %v allocs", n)
		}
		if n := testing.AllocsPerRun(3, func() { LSTMForwardTo32(dz, z, st(0), st(1), st(3), st(2), hid, st(7), hid, b, hid) }); n != 0 {
			t.Errorf("LSTMForwardTo32: %v allocs", n)
		}
		if n := testing.AllocsPerRun(3, func() { LSTMBackward32(z, st(0), st(3), st(4), st(5), dz, st(6), b, hid) }); n != 0 {
			t.Errorf("LSTMBackward32: %v allocs", n)
		}
	})
}

// TestLSTMForwardTo checks LSTMForwardTo32/64 against the reference: the
// gates land in their own matrix (z untouched) or in place, h in one or
// two strided destinations whose gaps stay untouched.
func TestLSTMForwardTo(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(13)
		for _, s := range lstmShapes {
			for _, mode := range []string{"separate", "in place", "one h"} {
				b, hid := s[0], s[1]
				name := fmt.Sprintf("b=%d hid=%d %s", b, hid, mode)
				z := randSlice32(r, 4*b*hid, 4)
				z0 := append([]float32(nil), z...)
				cPrev := randSlice32(r, b*hid, 2)
				wg, wc, wh, wt := refLSTMForward(to64(z), to64(cPrev), b, hid)
				gates := make([]float32, 4*b*hid)
				if mode == "in place" {
					gates = z
				}
				const sentinel = float32(-555.5)
				ldh, ldh2 := hid+3, hid+1
				h := make([]float32, b*ldh)
				h2 := make([]float32, b*ldh2)
				fill32(h, sentinel)
				fill32(h2, sentinel)
				c, tc := make([]float32, b*hid), make([]float32, b*hid)
				hh2 := h2
				if mode == "one h" {
					hh2 = nil
				}
				LSTMForwardTo32(gates, z, cPrev, c, tc, h, ldh, hh2, ldh2, b, hid)
				maxDiff(t, name+" gates", to64(gates), wg, 1e-6)
				maxDiff(t, name+" c", to64(c), wc, 1e-6)
				maxDiff(t, name+" tanhC", to64(tc), wt, 1e-6)
				if mode == "separate" {
					for i := range z {
						if z[i] != z0[i] {
							t.Fatalf("%s: z[%d] modified", name, i)
						}
					}
				}
				check := func(what string, h []float32, ld int, written bool) {
					for i := 0; i < b; i++ {
						for j := 0; j < ld; j++ {
							got := h[i*ld+j]
							switch {
							case j >= hid || !written:
								if got != sentinel {
									t.Fatalf("%s: %s[%d,%d] = %v written", name, what, i, j, got)
								}
							case !(math.Abs(float64(got)-wh[i*hid+j]) <= 1e-6*(1+math.Abs(wh[i*hid+j]))):
								t.Fatalf("%s: %s[%d,%d] = %v, want %v", name, what, i, j, got, wh[i*hid+j])
							}
						}
					}
				}
				check("h", h, ldh, true)
				check("h2", h2, ldh2, mode != "one h")

				// float64: exact against the reference.
				g64, z64 := make([]float64, 4*b*hid), to64(z0)
				c64, t64 := make([]float64, b*hid), make([]float64, b*hid)
				h64, h264 := make([]float64, b*ldh), make([]float64, b*ldh2)
				LSTMForwardTo64(g64, z64, to64(cPrev), c64, t64, h64, ldh, h264, ldh2, b, hid)
				maxDiff(t, name+" gates64", g64, wg, 1e-15)
				for i := 0; i < b; i++ {
					maxDiff(t, name+" h64", h64[i*ldh:i*ldh+hid], wh[i*hid:(i+1)*hid], 1e-15)
					maxDiff(t, name+" h2_64", h264[i*ldh2:i*ldh2+hid], wh[i*hid:(i+1)*hid], 1e-15)
				}
			}
		}
	})
}

// TestCellActivationAccuracy sweeps the activations inside the forward
// cell (which differ from Sigmoid32/Tanh32, see the package doc) over the
// inputs of TestActivationAccuracy: once through the gates (i, f, o =
// sigmoid(x), g = tanh(x)) and once through tanh(c), with f = 1, i ≈ 0
// and g = 0 so that c = cPrev exactly.
func TestCellActivationAccuracy(t *testing.T) {
	xs := actSweep()
	xs = append(xs, 0.3, -0.7, 5) // a scalar tail
	n := len(xs)
	paths(t, func(t *testing.T) {
		z := make([]float32, 4*n)
		for q := 0; q < 4; q++ {
			copy(z[q*n:], xs)
		}
		zero := make([]float32, n)
		c, h, tc := make([]float32, n), make([]float32, n), make([]float32, n)
		LSTMForward32(z, zero, c, h, tc, 1, n)
		var sig, th errStats
		for j, x := range xs {
			ws := 1 / (1 + math.Exp(-float64(x)))
			wt := math.Tanh(float64(x))
			for _, q := range []int{0, 1, 3} {
				got := z[q*n+j]
				if x < -cellCut {
					// Clamped: exp(-87)-ish instead of a smaller value.
					if got < 0 || got > 1.7e-38 {
						t.Fatalf("sigmoid(%g) = %g, want in [0, 1.7e-38]", x, got)
					}
					continue
				}
				sig.add(x, got, ws, 0)
			}
			th.add(x, z[2*n+j], wt, 0)
		}
		// tanh(c): f = 1, i = sigmoid(-100) ≈ 1.6e-38, g = 0, so c = cPrev.
		for j := 0; j < n; j++ {
			z[j], z[n+j], z[2*n+j], z[3*n+j] = -100, 100, 0, 100
		}
		cp := append([]float32(nil), xs...)
		LSTMForward32(z, cp, c, h, tc, 1, n)
		var tcs errStats
		for j, x := range xs {
			if c[j] != x {
				t.Fatalf("c = %g, want cPrev = %g", c[j], x)
			}
			tcs.add(x, tc[j], math.Tanh(float64(x)), 0)
			if h[j] != tc[j] {
				t.Fatalf("h = %g, want tanhC = %g (o = 1)", h[j], tc[j])
			}
		}
		t.Logf("cell sigmoid: max abs err %.3g (x=%g), max rel err %.3g (x=%g) over %d inputs", sig.maxAbs, sig.atAbs, sig.maxRel, sig.atRel, n)
		t.Logf("cell tanh(g): max abs err %.3g (x=%g), max rel err %.3g (x=%g)", th.maxAbs, th.atAbs, th.maxRel, th.atRel)
		t.Logf("cell tanh(c): max abs err %.3g (x=%g), max rel err %.3g (x=%g)", tcs.maxAbs, tcs.atAbs, tcs.maxRel, tcs.atRel)
		for _, e := range []errStats{sig, th, tcs} {
			if e.maxRel > 1e-6 || e.maxAbs > 1e-6 {
				t.Errorf("cell activation error too large: %+v", e)
			}
		}
	})
}

// TestCellActivationSpecial checks the saturation and NaN behaviour of
// the cell activations.
func TestCellActivationSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	cases := []struct{ x, sig, tanh float32 }{
		{inf, 1, 1},
		{100, 1, 1},
		{math.MaxFloat32, 1, 1},
		{0, 0.5, 0},
		{negZero, 0.5, negZero},
		{-100, -1, -1}, // sigmoid checked separately: clamped to about 1.6e-38
		{-inf, -1, -1},
	}
	paths(t, func(t *testing.T) {
		const hid = 11 // a vector plus a scalar tail
		for _, tc := range cases {
			z := make([]float32, 4*hid)
			fill32(z, tc.x)
			zero := make([]float32, hid)
			c, h, th := make([]float32, hid), make([]float32, hid), make([]float32, hid)
			LSTMForward32(z, zero, c, h, th, 1, hid)
			for j := 0; j < hid; j++ {
				s, g := z[j], z[2*hid+j]
				if tc.sig >= 0 && s != tc.sig {
					t.Errorf("sigmoid(%v)[%d] = %v, want %v", tc.x, j, s, tc.sig)
				}
				if tc.sig < 0 && !(s > 0 && s < 1.7e-38) {
					t.Errorf("sigmoid(%v)[%d] = %v, want about 1.6e-38", tc.x, j, s)
				}
				if g != tc.tanh || math.Signbit(float64(g)) != math.Signbit(float64(tc.tanh)) {
					t.Errorf("tanh(%v)[%d] = %v, want %v", tc.x, j, g, tc.tanh)
				}
			}
		}
		z := make([]float32, 4*hid)
		fill32(z, float32(math.NaN()))
		z[3] = -z[3]
		zero := make([]float32, hid)
		c, h, th := make([]float32, hid), make([]float32, hid), make([]float32, hid)
		LSTMForward32(z, zero, c, h, th, 1, hid)
		for j := range z {
			if !isNaN32(z[j]) {
				t.Errorf("NaN not propagated to gate %d: %v", j, z[j])
			}
		}
		for j := 0; j < hid; j++ {
			if !isNaN32(h[j]) || !isNaN32(c[j]) {
				t.Errorf("NaN not propagated to c/h %d", j)
			}
		}
	})
}
