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
	for _, f := range []func(){
		func() { LSTMForward32(s[:7], s, s, s, s, 1, 2) },
		func() { LSTMForward32(s, s[:1], s, s, s, 1, 2) },
		func() { LSTMBackward32(s, s, s, s, s, s[:7], s, 1, 2) },
		func() { LSTMForward64(make([]float64, 3), nil, nil, nil, nil, 1, 1) },
		func() { LSTMForward32(s, s, s, s, s, -1, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
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
		if n := testing.AllocsPerRun(3, func() { LSTMBackward32(z, st(0), st(3), st(4), st(5), dz, st(6), b, hid) }); n != 0 {
			t.Errorf("LSTMBackward32: %v allocs", n)
		}
	})
}
