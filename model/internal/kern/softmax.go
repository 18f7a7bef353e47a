package kern

import (
	"math"
	"slices"
)

// Softmax32 replaces x by its softmax, exp(x_i − m)/Σ_j exp(x_j − m) with
// m the largest x_j. The exponentials are those of Sigmoid32 (see
// Accuracy): an entry more than 87.3 below the largest becomes 0. NaN in
// x makes the results NaN; an empty x is left alone.
func Softmax32(x []float32) {
	if len(x) == 0 {
		return
	}
	var m float32
	if useAsm && len(x) >= 8 {
		m = max32(&x[0], len(x)&^7)
		for _, v := range x[len(x)&^7:] {
			m = max(m, v)
		}
	} else {
		m = slices.Max(x)
	}
	var s float32
	i := 0
	if useAsm && len(x) >= 8 {
		i = len(x) &^ 7
		s = expShift32(&x[0], i, m)
	}
	for ; i < len(x); i++ {
		e := expNegF32(m - x[i])
		x[i] = e
		s += e
	}
	Scale32(1/s, x)
}

// Softmax64 is the float64 version of Softmax32, using math.Exp.
func Softmax64(x []float64) {
	if len(x) == 0 {
		return
	}
	m := slices.Max(x)
	var s float64
	for i, v := range x {
		e := math.Exp(v - m)
		x[i] = e
		s += e
	}
	Scale64(1/s, x)
}
