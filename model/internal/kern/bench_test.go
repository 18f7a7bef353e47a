package kern

import (
	"fmt"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// LSTM training shapes: batch m in {413, 64}, input+hidden k in {74, 96,
// 128}, 4H = 256. Forward z = [x h]·W (NN); backward d[x h] = dz·Wᵀ (NT)
// and dW += [x h]ᵀ·dz (TN).
var benchGemm = []struct {
	op      gemmOp
	m, n, k int
}{
	{opNN, 413, 256, 74},
	{opNN, 413, 256, 96},
	{opNN, 413, 256, 128},
	{opNN, 64, 256, 74},
	{opNN, 64, 256, 128},
	{opNT, 413, 74, 256},
	{opNT, 64, 74, 256},
	{opNT, 413, 128, 256},
	{opTN, 74, 256, 413},
	{opTN, 74, 256, 64},
	{opTN, 128, 256, 413},
	// 2x64 network at batch 64: weight gradients over a whole sequence
	// (k = L·B), the packed forward products and the backward products.
	{opTN, 73, 256, 3584},
	{opTN, 129, 256, 3584},
	{opNNP, 64, 256, 73},
	{opNNP, 64, 256, 129},
	{opNTP, 64, 64, 256},
}

func BenchmarkGemm32(b *testing.B) {
	for _, s := range benchGemm {
		ar, ac, br, bc := s.op.storedShape(s.m, s.n, s.k)
		r := newRand(30)
		a := randSlice32(r, ar*ac, 1)
		bm := randSlice32(r, br*bc, 1)
		c := randSlice32(r, s.m*s.n, 1)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		name := fmt.Sprintf("%v/m=%d,n=%d,k=%d", s.op, s.m, s.n, s.k)
		run := func(b *testing.B, f func()) {
			b.ReportAllocs()
			f()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		impls := []struct {
			name string
			asm  bool
		}{{"kern", true}, {"purego", false}}
		for _, im := range impls {
			b.Run(name+"/"+im.name, func(b *testing.B) {
				if im.asm && !useAsm {
					b.Skip("no assembly on this machine")
				}
				saved := useAsm
				useAsm = im.asm
				defer func() { useAsm = saved }()
				if s.op == opNNP || s.op == opNTP {
					// Packed once, as for weights.
					bp := make([]float32, PackedLen(s.k, s.n))
					PackB32(bp, bm, s.k, s.n, bc, s.op == opNTP)
					run(b, func() { GemmNNPacked32(s.m, s.n, s.k, a, ac, bp, c, s.n, false) })
					return
				}
				run(b, func() { callGemm32(s.op, s.m, s.n, s.k, a, ac, bm, bc, c, s.n, false) })
			})
		}
		b.Run(name+"/gonum", func(b *testing.B) {
			ga := blas32.General{Rows: ar, Cols: ac, Stride: ac, Data: a}
			gb := blas32.General{Rows: br, Cols: bc, Stride: bc, Data: bm}
			gc := blas32.General{Rows: s.m, Cols: s.n, Stride: s.n, Data: c}
			ta, tb := blas.NoTrans, blas.NoTrans
			switch s.op {
			case opNT, opNTP:
				tb = blas.Trans
			case opTN:
				ta = blas.Trans
			}
			run(b, func() { blas32.Gemm(ta, tb, 1, ga, gb, 0, gc) })
		})
	}
}

// BenchmarkGemmTNSum32 is the weight-gradient product of the LSTM's
// backward pass at batch 64: per pair of steps, dW += Xᵀ·dZ over 2×64
// rows, X from a sequence-sized buffer (cold, as in training) and dZ from
// a cache-hot scratch. It reports the rate over the whole sequence.
func BenchmarkGemmTNSum32(b *testing.B) {
	const L, B, g = 56, 64, 256
	for _, ld := range []int{73, 129} {
		r := newRand(34)
		xh := randSlice32(r, L*B*ld, 1)
		dz := randSlice32(r, 2*B*g, 1)
		dw := make([]float32, ld*g)
		flops := 2 * float64(L*B) * float64(ld) * float64(g)
		for _, asm := range []bool{true, false} {
			impl := "kern"
			if !asm {
				impl = "purego"
			}
			b.Run(fmt.Sprintf("m=%d,n=%d,k=2x%d/%s", ld, g, B, impl), func(b *testing.B) {
				if asm && !useAsm {
					b.Skip("no assembly on this machine")
				}
				saved := useAsm
				useAsm = asm
				defer func() { useAsm = saved }()
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					for t := L - 2; t >= 0; t -= 2 {
						GemmTNSum32(ld, g, B, 2, xh[t*B*ld:], ld, B*ld, dz, g, B*g, dw, g, t < L-2)
					}
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func benchLSTM(b *testing.B, asm bool, fwd bool) {
	if asm && !useAsm {
		b.Skip("no assembly on this machine")
	}
	saved := useAsm
	useAsm = asm
	defer func() { useAsm = saved }()
	const bs, hid = 413, 64
	r := newRand(31)
	z := randSlice32(r, 4*bs*hid, 2)
	z0 := append([]float32(nil), z...)
	st := make([][]float32, 7)
	for i := range st {
		st[i] = randSlice32(r, bs*hid, 1)
	}
	dz := make([]float32, 4*bs*hid)
	b.ReportAllocs()
	b.SetBytes(int64(4 * (4*bs*hid*2 + 4*bs*hid)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if fwd {
			// z is activated in place; the value range stays harmless
			// (activated gates lie in [-1, 1]), so no reset is needed.
			LSTMForward32(z, st[0], st[1], st[2], st[3], bs, hid)
		} else {
			LSTMBackward32(z0, st[0], st[3], st[4], st[5], dz, st[6], bs, hid)
		}
	}
	b.ReportMetric(float64(bs*hid)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mcell/s")
}

func BenchmarkLSTMForward32(b *testing.B) {
	b.Run("B=413,H=64/kern", func(b *testing.B) { benchLSTM(b, true, true) })
	b.Run("B=413,H=64/purego", func(b *testing.B) { benchLSTM(b, false, true) })
}

func BenchmarkLSTMBackward32(b *testing.B) {
	b.Run("B=413,H=64/kern", func(b *testing.B) { benchLSTM(b, true, false) })
	b.Run("B=413,H=64/purego", func(b *testing.B) { benchLSTM(b, false, false) })
}

func BenchmarkLSTMForward64(b *testing.B) {
	const bs, hid = 413, 64
	z := make([]float64, 4*bs*hid)
	s := make([]float64, 4*bs*hid)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		LSTMForward64(z, s[:bs*hid], s[bs*hid:2*bs*hid], s[2*bs*hid:3*bs*hid], s[3*bs*hid:], bs, hid)
	}
}

func BenchmarkActivation32(b *testing.B) {
	x := randSlice32(newRand(32), 1<<14, 10)
	dst := make([]float32, len(x))
	for _, f := range []struct {
		name string
		fn   func(dst, x []float32)
	}{{"Sigmoid32", Sigmoid32}, {"Tanh32", Tanh32}} {
		for _, asm := range []bool{true, false} {
			impl := "kern"
			if !asm {
				impl = "purego"
			}
			b.Run(f.name+"/"+impl, func(b *testing.B) {
				if asm && !useAsm {
					b.Skip("no assembly on this machine")
				}
				saved := useAsm
				useAsm = asm
				defer func() { useAsm = saved }()
				b.ReportAllocs()
				b.SetBytes(int64(8 * len(x)))
				for i := 0; i < b.N; i++ {
					f.fn(dst, x)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(x)), "ns/elem")
			})
		}
	}
}

func BenchmarkAdam32(b *testing.B) {
	const n = 20_000 // parameters of one 74->64 LSTM layer
	r := newRand(33)
	p, g, m, v := randSlice32(r, n, 1), randSlice32(r, n, 1), randSlice32(r, n, 1), make([]float32, n)
	for _, asm := range []bool{true, false} {
		impl := "kern"
		if !asm {
			impl = "purego"
		}
		b.Run(impl, func(b *testing.B) {
			if asm && !useAsm {
				b.Skip("no assembly on this machine")
			}
			saved := useAsm
			useAsm = asm
			defer func() { useAsm = saved }()
			b.ReportAllocs()
			b.SetBytes(4 * 4 * n)
			for i := 0; i < b.N; i++ {
				Adam32(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 0.5, 0.1)
			}
		})
	}
}
