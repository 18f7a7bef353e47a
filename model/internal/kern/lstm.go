package kern

import "math"

// checkLSTM panics unless every gate matrix (length in g) holds 4*b*hid
// elements and every state matrix (length in s) b*hid.
func checkLSTM(name string, b, hid int, g []int, s []int) {
	if b < 0 || hid < 0 {
		panic("kern: " + name + ": negative dimension")
	}
	for _, l := range g {
		if l < 4*b*hid {
			panic("kern: " + name + ": gate matrix too short")
		}
	}
	for _, l := range s {
		if l < b*hid {
			panic("kern: " + name + ": state matrix too short")
		}
	}
}

// LSTMForward32 runs the LSTM cell forward for a batch of b rows with hidden
// size hid. z is b×4hid (row stride 4hid) holding the pre-activations in
// column blocks [i | f | g | o]; cPrev, c, h and tanhC are b×hid (row
// stride hid). On return z holds the activated gates (sigmoid for i, f, o,
// tanh for g) and
//
//	c = f*cPrev + i*g,  tanhC = tanh(c),  h = o*tanhC.
//
// c may be the same slice as cPrev (in-place update); no other arguments may
// overlap. It panics if z is shorter than 4*b*hid or another slice shorter
// than b*hid. The activations are those described under Accuracy (cell
// activations).
func LSTMForward32(z, cPrev, c, h, tanhC []float32, b, hid int) {
	checkLSTM("LSTMForward32", b, hid, []int{len(z)}, []int{len(cPrev), len(c), len(h), len(tanhC)})
	lstmForward32(z, z, cPrev, c, tanhC, h, hid, h, hid, b, hid)
}

// LSTMForwardTo32 is LSTMForward32 with separate outputs for the gates
// and a strided hidden state: the activated gates go to gates (b×4hid)
// instead of over the pre-activations, so z is only read, and row r of h
// goes to h[r*ldh:] and, when h2 is not nil, also to h2[r*ldh2:]. Writing
// the gates to a cold sequence buffer while z stays in cache saves a
// copy, and the strided h lands directly in the stacked inputs of the
// next step and of the layer above.
//
// gates may be the same slice as z and c the same as cPrev; h2 may equal
// h; nothing else may overlap. It panics if z or gates is shorter than
// 4*b*hid, cPrev, c or tanhC shorter than b*hid, ldh (ldh2) is smaller
// than hid or h (h2) shorter than (b-1)*ldh+hid.
func LSTMForwardTo32(gates, z, cPrev, c, tanhC, h []float32, ldh int, h2 []float32, ldh2 int, b, hid int) {
	checkLSTM("LSTMForwardTo32", b, hid, []int{len(z), len(gates)}, []int{len(cPrev), len(c), len(tanhC)})
	checkLSTMH("LSTMForwardTo32", b, hid, len(h), ldh, h2 != nil, len(h2), ldh2)
	if h2 == nil {
		h2, ldh2 = h, ldh
	}
	lstmForward32(gates, z, cPrev, c, tanhC, h, ldh, h2, ldh2, b, hid)
}

// asmVectors returns how many whole 8-column vectors of a row of hid
// columns the assembly cell kernels take, the pure-Go loop the rest: 0
// without assembly.
func asmVectors(hid int) int {
	if useAsm {
		return hid / 8
	}
	return 0
}

// checkLSTMH checks the strided h outputs of LSTMForwardTo32/64.
func checkLSTMH(name string, b, hid, lh, ldh int, two bool, lh2, ldh2 int) {
	if b == 0 || hid == 0 {
		return
	}
	if ldh < hid || lh < (b-1)*ldh+hid {
		panic("kern: " + name + ": bad h")
	}
	if two && (ldh2 < hid || lh2 < (b-1)*ldh2+hid) {
		panic("kern: " + name + ": bad h2")
	}
}

func lstmForward32(gates, z, cPrev, c, tanhC, h []float32, ldh int, h2 []float32, ldh2 int, b, hid int) {
	if b == 0 || hid == 0 {
		return
	}
	nv := asmVectors(hid)
	for r := 0; r < b; r++ {
		zr := z[r*4*hid : (r+1)*4*hid]
		gr := gates[r*4*hid : (r+1)*4*hid]
		cpr := cPrev[r*hid : (r+1)*hid]
		cr := c[r*hid : (r+1)*hid]
		tr := tanhC[r*hid : (r+1)*hid]
		hr := h[r*ldh : r*ldh+hid]
		hr2 := h2[r*ldh2 : r*ldh2+hid]
		if nv > 0 {
			lstmFwdRow32(&zr[0], &gr[0], &cpr[0], &cr[0], &hr[0], &hr2[0], &tr[0], hid, nv)
		}
		for j := nv * 8; j < hid; j++ {
			ig := cellSigmoidF32(zr[j])
			fg := cellSigmoidF32(zr[hid+j])
			gg := cellTanhF32(zr[2*hid+j])
			og := cellSigmoidF32(zr[3*hid+j])
			gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j] = ig, fg, gg, og
			cv := fg*cpr[j] + ig*gg
			cr[j] = cv
			t := cellTanhF32(cv)
			tr[j] = t
			hr[j] = og * t
			hr2[j] = og * t
		}
	}
}

// LSTMBackward32 runs the LSTM cell backward. gates is the b×4hid matrix of
// activated gates [i | f | g | o] left in z by LSTMForward32; cPrev and
// tanhC are the forward values; dh is the loss gradient w.r.t. h and dc the
// gradient flowing into c from the next time step (zeros at the last step).
// It writes the pre-activation gradients dz (b×4hid, [di | df | dg | do])
// and dcPrev (b×hid):
//
//	dct    = dc + dh*o*(1-tanhC²)
//	do     = dh*tanhC*o*(1-o)
//	di     = dct*g*i*(1-i)
//	df     = dct*cPrev*f*(1-f)
//	dg     = dct*i*(1-g²)
//	dcPrev = dct*f
//
// Allowed aliasing: dz may be the same slice as gates, and dcPrev may be the
// same slice as dc (both exact, same start). Nothing else may overlap. It
// panics if gates or dz is shorter than 4*b*hid or another slice shorter
// than b*hid.
func LSTMBackward32(gates, cPrev, tanhC, dh, dc, dz, dcPrev []float32, b, hid int) {
	checkLSTM("LSTMBackward32", b, hid, []int{len(gates), len(dz)}, []int{len(cPrev), len(tanhC), len(dh), len(dc), len(dcPrev)})
	if b == 0 || hid == 0 {
		return
	}
	nv := asmVectors(hid)
	for r := 0; r < b; r++ {
		gr := gates[r*4*hid : (r+1)*4*hid]
		dzr := dz[r*4*hid : (r+1)*4*hid]
		cpr := cPrev[r*hid : (r+1)*hid]
		tr := tanhC[r*hid : (r+1)*hid]
		dhr := dh[r*hid : (r+1)*hid]
		dcr := dc[r*hid : (r+1)*hid]
		dcpr := dcPrev[r*hid : (r+1)*hid]
		if nv > 0 {
			lstmBwdRow32(&gr[0], &cpr[0], &tr[0], &dhr[0], &dcr[0], &dzr[0], &dcpr[0], hid, nv)
		}
		for j := nv * 8; j < hid; j++ {
			ig, fg, gg, og := gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j]
			t := tr[j]
			d := dhr[j]
			dct := dcr[j] + d*og*(1-t*t)
			cp := cpr[j]
			dzr[3*hid+j] = d * t * og * (1 - og)
			dzr[j] = dct * gg * ig * (1 - ig)
			dzr[hid+j] = dct * fg * cp * (1 - fg)
			dzr[2*hid+j] = dct * ig * (1 - gg*gg)
			dcpr[j] = dct * fg
		}
	}
}

// LSTMForward64 is the float64 version of LSTMForward32, using math.Exp and
// math.Tanh (no approximations). Shapes, aliasing and panics are the same.
func LSTMForward64(z, cPrev, c, h, tanhC []float64, b, hid int) {
	checkLSTM("LSTMForward64", b, hid, []int{len(z)}, []int{len(cPrev), len(c), len(h), len(tanhC)})
	lstmForward64(z, z, cPrev, c, tanhC, h, hid, h, hid, b, hid)
}

// LSTMForwardTo64 is the float64 version of LSTMForwardTo32.
func LSTMForwardTo64(gates, z, cPrev, c, tanhC, h []float64, ldh int, h2 []float64, ldh2 int, b, hid int) {
	checkLSTM("LSTMForwardTo64", b, hid, []int{len(z), len(gates)}, []int{len(cPrev), len(c), len(tanhC)})
	checkLSTMH("LSTMForwardTo64", b, hid, len(h), ldh, h2 != nil, len(h2), ldh2)
	if h2 == nil {
		h2, ldh2 = h, ldh
	}
	lstmForward64(gates, z, cPrev, c, tanhC, h, ldh, h2, ldh2, b, hid)
}

func lstmForward64(gates, z, cPrev, c, tanhC, h []float64, ldh int, h2 []float64, ldh2 int, b, hid int) {
	for r := 0; r < b; r++ {
		zr := z[r*4*hid : (r+1)*4*hid]
		gr := gates[r*4*hid : (r+1)*4*hid]
		cpr := cPrev[r*hid : (r+1)*hid]
		cr := c[r*hid : (r+1)*hid]
		tr := tanhC[r*hid : (r+1)*hid]
		hr := h[r*ldh : r*ldh+hid]
		hr2 := h2[r*ldh2 : r*ldh2+hid]
		for j := 0; j < hid; j++ {
			ig := sigmoidF64(zr[j])
			fg := sigmoidF64(zr[hid+j])
			gg := math.Tanh(zr[2*hid+j])
			og := sigmoidF64(zr[3*hid+j])
			gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j] = ig, fg, gg, og
			cv := fg*cpr[j] + ig*gg
			cr[j] = cv
			t := math.Tanh(cv)
			tr[j] = t
			hr[j] = og * t
			hr2[j] = og * t
		}
	}
}

// LSTMBackward64 is the float64 version of LSTMBackward32. Shapes, formulas,
// aliasing and panics are the same.
func LSTMBackward64(gates, cPrev, tanhC, dh, dc, dz, dcPrev []float64, b, hid int) {
	checkLSTM("LSTMBackward64", b, hid, []int{len(gates), len(dz)}, []int{len(cPrev), len(tanhC), len(dh), len(dc), len(dcPrev)})
	for r := 0; r < b; r++ {
		gr := gates[r*4*hid : (r+1)*4*hid]
		dzr := dz[r*4*hid : (r+1)*4*hid]
		cpr := cPrev[r*hid : (r+1)*hid]
		tr := tanhC[r*hid : (r+1)*hid]
		dhr := dh[r*hid : (r+1)*hid]
		dcr := dc[r*hid : (r+1)*hid]
		dcpr := dcPrev[r*hid : (r+1)*hid]
		for j := 0; j < hid; j++ {
			ig, fg, gg, og := gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j]
			t := tr[j]
			d := dhr[j]
			dct := dcr[j] + d*og*(1-t*t)
			cp := cpr[j]
			dzr[3*hid+j] = d * t * og * (1 - og)
			dzr[j] = dct * gg * ig * (1 - ig)
			dzr[hid+j] = dct * fg * cp * (1 - fg)
			dzr[2*hid+j] = dct * ig * (1 - gg*gg)
			dcpr[j] = dct * fg
		}
	}
}
