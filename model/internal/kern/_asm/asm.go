// Command asm generates the AVX2+FMA assembly kernels of package kern.
//
// It is its own module so that the main module never depends on avo. Run it
// through go generate in the parent directory:
//
//	go generate ./model/internal/kern/
//
// which executes
//
//	go run -C _asm . -out ../kern_amd64.s -stubs ../stubs_amd64.go -pkg kern
package main

import (
	"log"
	"math"
	"os"
	"regexp"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("!purego")
	genConsts()
	genGemm()
	genGemmPacked()
	genAct()
	genLSTM()
	genGRU()
	genExpShift()
	genTrf()
	genAdam()
	genVec()
	Generate()
	checkAVX2Only()
}

// checkAVX2Only fails the generation if the output uses registers that
// need AVX-512 (X16-X31, Y16-Y31, Z or K registers): avo's allocator
// hands them out silently when a kernel needs more than 16 vector
// registers, and the result dies with SIGILL on AVX2-only CPUs.
func checkAVX2Only() {
	out := ""
	for i, a := range os.Args {
		if a == "-out" && i+1 < len(os.Args) {
			out = os.Args[i+1]
		}
	}
	if out == "" {
		return
	}
	b, err := os.ReadFile(out)
	if err != nil {
		log.Fatal(err)
	}
	if m := regexp.MustCompile(`\b([XY](1[6-9]|2[0-9]|3[01])|Z[0-9]+|K[0-7])\b`).Find(b); m != nil {
		log.Fatalf("%s uses %s, which needs AVX-512: a kernel needs more than 16 vector registers", out, m)
	}
}

// Constant table: every entry is a 32-byte vector (8 identical lanes) so
// that it can be used directly as an m256 operand.
type constDef struct {
	name string
	bits uint32
}

func f32(v float64) uint32 { return math.Float32bits(float32(v)) }

var constDefs = []constDef{
	{"one", f32(1)},
	{"abs", 0x7fffffff},
	{"sign", 0x80000000},
	{"nlog2e", f32(-1.44269504088896341)},
	{"ln2hi", f32(0.693359375)},
	{"ln2lo", f32(-2.12194440e-4)},
	{"e0", f32(1.9875691500e-4)},
	{"e1", f32(1.3981999507e-3)},
	{"e2", f32(8.3334519073e-3)},
	{"e3", f32(4.1665795894e-2)},
	{"e4", f32(1.6666665459e-1)},
	{"e5", f32(5.0000001201e-1)},
	{"magic", f32(12582912 + 127)}, // 1.5*2^23 + 127
	{"expcut", f32(87.3)},
	{"t0", f32(-5.70498872745e-3)},
	{"t1", f32(2.06390887954e-2)},
	{"t2", f32(-5.37397155531e-2)},
	{"t3", f32(1.33314422036e-1)},
	{"t4", f32(-3.33332819422e-1)},
	{"tcut", f32(0.625)},
	{"pcut", f32(87)},
	{"ncut", f32(-87)},
	{"half", f32(0.5)},
	{"geluc", f32(0.7978845608028654)}, // √(2/π)
	{"gelua", f32(0.044715)},
	{"gelua3", f32(3 * 0.044715)},
	// Mask table for the GEMM edge kernels is passed by the caller.
}

var (
	consts   Mem
	constIdx = map[string]int{}
)

func genConsts() {
	consts = GLOBL("kconst", RODATA|NOPTR)
	for i, c := range constDefs {
		constIdx[c.name] = i
		for l := 0; l < 8; l++ {
			DATA(32*i+4*l, U32(c.bits))
		}
	}
}

// KC returns the m256 operand of the named constant vector.
func KC(name string) Mem {
	i, ok := constIdx[name]
	if !ok {
		panic("unknown constant " + name)
	}
	return consts.Offset(32 * i)
}

// loadK loads the named constant vector into a fresh register.
func loadK(name string) VecVirtual {
	r := YMM()
	VMOVUPS(KC(name), r)
	return r
}
