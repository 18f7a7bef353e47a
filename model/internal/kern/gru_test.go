package kern

import (
	"fmt"
	"math"
	"testing"
)

// refGRU is a scalar reference GRU cell, written independently of the
// kernels: forward from the pre-activations z ([n_x | r | u | n_h] per
// row) and hPrev (b×hid), and backward by the chain rule through
// h = (1-u)·n + u·hPrev.
func refGRU(z, hPrev, dh, dc []float64, b, hid int) (gates, h, dz, dcPrev []float64) {
	gates, dz = make([]float64, 4*b*hid), make([]float64, 4*b*hid)
	h, dcPrev = make([]float64, b*hid), make([]float64, b*hid)
	for r := 0; r < b; r++ {
		for j := 0; j < hid; j++ {
			base, k := r*4*hid, r*hid+j
			rg := refSigmoid(z[base+hid+j])
			ug := refSigmoid(z[base+2*hid+j])
			hn := z[base+3*hid+j]
			a := z[base+j] + rg*hn
			ng := math.Tanh(a)
			gates[base+j], gates[base+hid+j], gates[base+2*hid+j], gates[base+3*hid+j] = ng, rg, ug, hn
			h[k] = (1-ug)*ng + ug*hPrev[k]

			g := dh[k] + dc[k]
			dN, dU := g*(1-ug), g*(hPrev[k]-ng)
			dA := dN * (1 - ng*ng)
			dz[base+j] = dA
			dz[base+hid+j] = dA * hn * rg * (1 - rg)
			dz[base+2*hid+j] = dU * ug * (1 - ug)
			dz[base+3*hid+j] = dA * rg
			dcPrev[k] = g * ug
		}
	}
	return
}

// strided returns the b×hid matrix x (row stride hid) spread to row stride
// ld, the gaps filled with fill.
func strided(x []float32, b, hid, ld int, fill float32) []float32 {
	s := make([]float32, b*ld)
	fill32(s, fill)
	for r := 0; r < b; r++ {
		copy(s[r*ld:], x[r*hid:(r+1)*hid])
	}
	return s
}

// TestGRU checks the float32 kernels on both paths, and the float64 ones,
// against the reference, in every allowed aliasing: gates over z, h (and
// h2) over hPrev, dcPrev over dc. Gaps of the strided matrices must stay
// untouched.
func TestGRU(t *testing.T) {
	const sentinel = float32(-555.5)
	paths(t, func(t *testing.T) {
		r := newRand(14)
		for _, s := range lstmShapes {
			for _, mode := range []string{"separate", "in place", "one h"} {
				b, hid := s[0], s[1]
				name := fmt.Sprintf("b=%d hid=%d %s", b, hid, mode)
				z := randSlice32(r, 4*b*hid, 4)
				hPrev := randSlice32(r, b*hid, 1)
				dh := randSlice32(r, b*hid, 1)
				dc := randSlice32(r, b*hid, 1)
				dc0 := append([]float32(nil), dc...)
				wg, wh, wdz, wdcp := refGRU(to64(z), to64(hPrev), to64(dh), to64(dc), b, hid)

				ldp, ldh2 := hid+3, hid+1
				hp := strided(hPrev, b, hid, ldp, sentinel)
				gates, h, ldh := make([]float32, 4*b*hid), make([]float32, b*ldp), ldp
				fill32(h, sentinel)
				h2 := strided(make([]float32, b*hid), b, hid, ldh2, sentinel)
				switch mode {
				case "in place":
					gates, h = z, hp
				case "one h":
					h2 = nil
				}
				z0 := append([]float32(nil), z...)
				GRUForwardTo32(gates, z, hp, ldp, h, ldh, h2, ldh2, b, hid)
				maxDiff(t, name+" gates", to64(gates), wg, 1e-6)
				if mode == "separate" {
					for i := range z {
						if z[i] != z0[i] {
							t.Fatalf("%s: z[%d] modified", name, i)
						}
					}
				}
				check := func(what string, h []float32, ld int) {
					for i := 0; i < b; i++ {
						for j := 0; j < ld; j++ {
							got := h[i*ld+j]
							switch {
							case j >= hid:
								if got != sentinel {
									t.Fatalf("%s: %s[%d,%d] = %v written", name, what, i, j, got)
								}
							case !(math.Abs(float64(got)-wh[i*hid+j]) <= 1e-6*(1+math.Abs(wh[i*hid+j]))):
								t.Fatalf("%s: %s[%d,%d] = %v, want %v", name, what, i, j, got, wh[i*hid+j])
							}
						}
					}
				}
				check("h", h, ldh)
				if h2 != nil {
					check("h2", h2, ldh2)
				}

				// Backward from the float32 gates; the reference from the
				// same inputs.
				hp = strided(hPrev, b, hid, ldp, sentinel)
				_, _, wdz, wdcp = refGRU(to64(z0), to64(hPrev), to64(dh), to64(dc0), b, hid)
				dz, dcp := make([]float32, 4*b*hid), make([]float32, b*hid)
				if mode == "in place" {
					dcp = dc
				}
				GRUBackward32(gates, hp, ldp, dh, dc, dz, dcp, b, hid)
				maxDiff(t, name+" dz", to64(dz), wdz, 2e-6)
				maxDiff(t, name+" dcPrev", to64(dcp), wdcp, 1e-6)

				// float64: exact against the reference.
				hp64 := to64(strided(hPrev, b, hid, ldp, sentinel))
				g64, h64 := make([]float64, 4*b*hid), make([]float64, b*ldh2)
				GRUForwardTo64(g64, to64(z0), hp64, ldp, h64, ldh2, nil, 0, b, hid)
				maxDiff(t, name+" gates64", g64, wg, 1e-15)
				for i := 0; i < b; i++ {
					maxDiff(t, name+" h64", h64[i*ldh2:i*ldh2+hid], wh[i*hid:(i+1)*hid], 1e-15)
				}
				dz64, dcp64 := make([]float64, 4*b*hid), make([]float64, b*hid)
				GRUBackward64(g64, hp64, ldp, to64(dh), to64(dc0), dz64, dcp64, b, hid)
				maxDiff(t, name+" dz64", dz64, wdz, 1e-14)
				maxDiff(t, name+" dcPrev64", dcp64, wdcp, 1e-14)
			}
		}
	})
}

func TestGRUPanics(t *testing.T) {
	s := make([]float32, 8)
	d := make([]float64, 8)
	for i, f := range []func(){
		func() { GRUForwardTo32(s[:7], s, s, 2, s, 2, nil, 0, 1, 2) }, // gates short
		func() { GRUForwardTo32(s, s, s, 1, s, 2, nil, 0, 2, 2) },     // ldp < hid
		func() { GRUForwardTo32(s, s, s[:5], 4, s, 2, nil, 0, 2, 2) }, // hPrev short
		func() { GRUForwardTo32(s, s, s, 2, s[:3], 2, nil, 0, 2, 2) }, // h short
		func() { GRUForwardTo32(s, s, s, 2, s, 2, s[:3], 2, 2, 2) },   // h2 short
		func() { GRUForwardTo32(s, s, s, 2, s, 2, nil, 0, -1, 2) },    // negative
		func() { GRUBackward32(s, s, 2, s[:1], s, s, s, 1, 2) },       // dh short
		func() { GRUBackward32(s, s, 2, s, s, s[:7], s, 1, 2) },       // dz short
		func() { GRUBackward32(s, s[:1], 2, s, s, s, s, 1, 2) },       // hPrev short
		func() { GRUForwardTo64(d, d, d, 1, d, 2, nil, 0, 2, 2) },     // ldp < hid
		func() { GRUBackward64(d, d, 2, d, d, d[:7], d, 1, 2) },       // dz short
	} {
		mustPanic(t, fmt.Sprint("case ", i), f)
	}
}

func TestGRUNoAlloc(t *testing.T) {
	const b, hid = 413, 64
	r := newRand(15)
	z := randSlice32(r, 4*b*hid, 2)
	gates := make([]float32, 4*b*hid)
	s := randSlice32(r, 5*b*hid, 1)
	st := func(i int) []float32 { return s[i*b*hid : (i+1)*b*hid] }
	paths(t, func(t *testing.T) {
		if n := testing.AllocsPerRun(3, func() { GRUForwardTo32(gates, z, st(0), hid, st(1), hid, st(2), hid, b, hid) }); n != 0 {
			t.Errorf("GRUForwardTo32: %v allocs", n)
		}
		if n := testing.AllocsPerRun(3, func() { GRUBackward32(gates, st(0), hid, st(1), st(2), z, st(3), b, hid) }); n != 0 {
			t.Errorf("GRUBackward32: %v allocs", n)
		}
	})
}

// TestSoftmax checks Softmax32 on both paths and Softmax64 against the
// definition, on lengths around the vector width, large spreads (tiny
// entries flush to 0) and NaN.
func TestSoftmax(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := newRand(16)
		for _, n := range []int{1, 3, 7, 8, 9, 16, 31, 56, 57} {
			for _, spread := range []float64{1, 30, 200} {
				x := randSlice32(r, n, spread)
				want := to64(x)
				var s float64
				for _, v := range want {
					s += math.Exp(v)
				}
				for i, v := range want {
					want[i] = math.Exp(v) / s
				}
				got64 := to64(x)
				Softmax64(got64)
				maxDiff(t, fmt.Sprintf("n=%d spread=%g Softmax64", n, spread), got64, want, 1e-13)
				Softmax32(x)
				for i, v := range x {
					// x_i − m rounds to float32 first: exp amplifies its
					// error of |x_i − m|·6e-8 (= |ln want| for the
					// largest term) into relative error.
					if d := math.Abs(float64(v) - want[i]); d > 1e-6*want[i]*(1+math.Abs(math.Log(want[i])))+1e-37 {
						t.Fatalf("n=%d spread=%g: softmax[%d] = %v, want %v", n, spread, i, v, want[i])
					}
				}
			}
		}
		x := []float32{1, 2, float32(math.NaN()), 3, 4, 5, 6, 7, 8}
		Softmax32(x)
		for i, v := range x {
			if !isNaN32(v) {
				t.Fatalf("NaN input: softmax[%d] = %v", i, v)
			}
		}
		Softmax32(nil)
	})
}
