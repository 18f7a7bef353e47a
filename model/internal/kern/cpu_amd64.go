//go:build !purego

package kern

import "golang.org/x/sys/cpu"

// hasAsm reports whether the assembly kernels are compiled in.
const hasAsm = true

// useAsm selects the AVX2+FMA kernels. It is a variable so that tests can
// force the pure-Go path; it is never written outside tests.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
