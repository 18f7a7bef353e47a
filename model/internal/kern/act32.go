package kern

import "math"

// Coefficients shared with the assembly (see _asm/asm.go).
const (
	expNLog2e = float32(-1.44269504088896341)
	expLn2Hi  = float32(0.693359375)
	expLn2Lo  = float32(-2.12194440e-4)
	expP0     = float32(1.9875691500e-4)
	expP1     = float32(1.3981999507e-3)
	expP2     = float32(8.3334519073e-3)
	expP3     = float32(4.1665795894e-2)
	expP4     = float32(1.6666665459e-1)
	expP5     = float32(5.0000001201e-1)
	expCut    = float32(87.3)
	tanhT0    = float32(-5.70498872745e-3)
	tanhT1    = float32(2.06390887954e-2)
	tanhT2    = float32(-5.37397155531e-2)
	tanhT3    = float32(1.33314422036e-1)
	tanhT4    = float32(-3.33332819422e-1)
	tanhCut   = float32(0.625)

	expMagic = float32(12582912 + 127) // 1.5*2^23 + 127
	cellCut  = float32(87)             // input clamp of the cell activations
)

// Sigmoid32 sets dst[i] = 1/(1+exp(-x[i])) for every i < len(x). dst may be
// x itself (in place) but must not otherwise overlap it. It panics if
// len(dst) < len(x). See the package Accuracy section for error bounds.
func Sigmoid32(dst, x []float32) {
	if len(dst) < len(x) {
		panic("kern: Sigmoid32: dst too short")
	}
	n := len(x)
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		sigmoid32(&dst[0], &x[0], i)
	}
	for ; i < n; i++ {
		dst[i] = sigmoidF32(x[i])
	}
}

// Tanh32 sets dst[i] = tanh(x[i]) for every i < len(x). dst may be x itself
// (in place) but must not otherwise overlap it. It panics if
// len(dst) < len(x). See the package Accuracy section for error bounds.
func Tanh32(dst, x []float32) {
	if len(dst) < len(x) {
		panic("kern: Tanh32: dst too short")
	}
	n := len(x)
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		tanh32(&dst[0], &x[0], i)
	}
	for ; i < n; i++ {
		dst[i] = tanhF32(x[i])
	}
}

// Sigmoid64 sets dst[i] = 1/(1+exp(-x[i])) using math.Exp. dst may be x.
func Sigmoid64(dst, x []float64) {
	if len(dst) < len(x) {
		panic("kern: Sigmoid64: dst too short")
	}
	for i, v := range x {
		dst[i] = sigmoidF64(v)
	}
}

// Tanh64 sets dst[i] = math.Tanh(x[i]). dst may be x.
func Tanh64(dst, x []float64) {
	if len(dst) < len(x) {
		panic("kern: Tanh64: dst too short")
	}
	for i, v := range x {
		dst[i] = math.Tanh(v)
	}
}

func sigmoidF64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// expNegF32 is the scalar twin of the assembly expNeg: exp(-t) for t >= 0
// or NaN, flushed to 0 above expCut. See _asm/act.go for the method.
func expNegF32(t float32) float32 {
	if t > expCut {
		return 0
	}
	if t != t {
		return t
	}
	kf := t*expNLog2e + expMagic // rounds to an integer: n + 127 + 1.5*2^23
	n := kf - expMagic
	r := -(n * expLn2Hi) - t
	r = -(n * expLn2Lo) + r
	p := expP0
	p = p*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(math.Float32bits(kf)<<23)
}

func sigmoidF32(x float32) float32 {
	e := expNegF32(abs32(x))
	d := 1 / (1 + e)
	if math.Signbit(float64(x)) {
		return e * d
	}
	return d
}

func tanhF32(x float32) float32 {
	ax := abs32(x)
	var r float32
	if ax < tanhCut {
		z := ax * ax
		p := tanhT0
		p = p*z + tanhT1
		p = p*z + tanhT2
		p = p*z + tanhT3
		p = p*z + tanhT4
		r = ax + (z*ax)*p
	} else {
		e := expNegF32(ax + ax)
		r = (1 - e) / (1 + e)
	}
	if math.Signbit(float64(x)) {
		return -r
	}
	return r
}

func abs32(x float32) float32 {
	return math.Float32frombits(math.Float32bits(x) &^ (1 << 31))
}

// cellExpF32 is the scalar twin of the assembly cellExpParts: for t in
// [-87, 87] (or NaN) it returns s = 2^n and pm ≈ expm1(r) such that
// exp(-t) = s*(1+pm). See _asm/act.go for the method.
func cellExpF32(t float32) (s, pm float32) {
	kf := t*expNLog2e + expMagic
	n := kf - expMagic
	r := -(n * expLn2Hi) - t
	r = -(n * expLn2Lo) + r
	r2 := r * r
	a := expP4*r + expP5
	b := expP2*r + expP3
	c := expP0*r + expP1
	a += r2 * b
	r4 := r2 * r2
	a += r4 * c
	pm = a*r2 + r
	return math.Float32frombits(math.Float32bits(kf) << 23), pm
}

// cellSigmoidF32 is the scalar twin of the cell's sigmoid:
// 1/(1+exp(-y)) with y = x clamped to [-87, 87] (NaN passes through).
func cellSigmoidF32(x float32) float32 {
	y := x
	if y < -cellCut {
		y = -cellCut
	} else if y > cellCut {
		y = cellCut
	}
	s, pm := cellExpF32(y)
	return 1 / (s*pm + (s + 1))
}

// cellTanhF32 is the scalar twin of the cell's tanh: with a = min(2|x|, 87)
// and em = expm1(-a), tanh(x) = sign(x)*|em/(2+em)|.
func cellTanhF32(x float32) float32 {
	a := 2 * abs32(x)
	if a > cellCut {
		a = cellCut
	}
	s, pm := cellExpF32(a)
	em := s*pm + (s - 1)
	d := s*pm + (s + 1)
	return math.Float32frombits(math.Float32bits(abs32(em/d)) | math.Float32bits(x)&(1<<31))
}
