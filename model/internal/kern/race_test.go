//go:build race

package kern

// The race detector slows the float64 reference loops about tenfold; the
// assembly is not instrumented anyway, so use the reduced GEMM case list.
const raceEnabled = true
