//go:build !amd64 || purego

package kern

// hasAsm reports whether the assembly kernels are compiled in.
const hasAsm = false

// useAsm is always false without assembly support.
var useAsm = false

const noAsm = "kern: assembly kernel called without assembly support"

func sgemmNN16(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, mask *int32, acc bool) {
	panic(noAsm)
}
func sgemmNN16m(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, mask *int32, acc bool) {
	panic(noAsm)
}
func sgemmNN8m(m, k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, mask *int32, acc bool) {
	panic(noAsm)
}
func sgemmPacked6x16(np, mr, k int, a, b, c *float32, ldc int, acc bool)             { panic(noAsm) }
func packA6(dst, a *float32, lda, k, kst, nu, nm int, mask *int32)                   { panic(noAsm) }
func packB16(dst, b *float32, ldb, k int, mask *int32)                               { panic(noAsm) }
func packB16m(dst, b *float32, ldb, k int, mask *int32)                              { panic(noAsm) }
func sigmoid32(dst, x *float32, n int)                                               { panic(noAsm) }
func tanh32(dst, x *float32, n int)                                                  { panic(noAsm) }
func lstmFwdRow32(z, gates, cPrev, c, h, h2, tanhC *float32, hid, nv int)            { panic(noAsm) }
func lstmBwdRow32(gates, cPrev, tanhC, dh, dc, dz, dcPrev *float32, hid, nv int)     { panic(noAsm) }
func gruFwdRow32(z, gates, hPrev, h, h2 *float32, hid, nv int)                       { panic(noAsm) }
func gruBwdRow32(gates, hPrev, dh, dc, dz, dcPrev *float32, hid, nv int)             { panic(noAsm) }
func expShift32(x *float32, n int, m float32) float32                                { panic(noAsm) }
func gelu32(f, t, u *float32, n int)                                                 { panic(noAsm) }
func geluBack32(df, u, t *float32, n int)                                            { panic(noAsm) }
func layerNormRow32(x, y, xh, gain, bias *float32, n int, invn, eps float32) float32 { panic(noAsm) }
func layerNormBackRow32(dy, gain, xh, dg, db, dx *float32, n int, r, invn float32)   { panic(noAsm) }
func max32(x *float32, n int) float32                                                { panic(noAsm) }
func adam32(p, gr, m, v *float32, n int, hp *[8]float32)                             { panic(noAsm) }
func axpy32(alpha float32, x, y *float32, n int)                                     { panic(noAsm) }
func scale32(alpha float32, x *float32, n int)                                       { panic(noAsm) }
func sqnorm32(x *float32, n int) float64                                             { panic(noAsm) }
func transpose8(dst, b *float32, ldb, k8 int)                                        { panic(noAsm) }
