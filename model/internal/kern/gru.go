package kern

import "math"

// checkGRU panics unless the gate matrices (lengths in g) hold 4*b*hid
// elements, the state matrices (lengths in s) b*hid, and the strided
// hidden-state matrices (lengths and row strides in pairs of hs) rows of
// hid elements.
func checkGRU(name string, b, hid int, g, s, hs []int) {
	checkLSTM(name, b, hid, g, s)
	if b == 0 || hid == 0 {
		return
	}
	for i := 0; i < len(hs); i += 2 {
		if l, ld := hs[i], hs[i+1]; ld < hid || l < (b-1)*ld+hid {
			panic("kern: " + name + ": bad hidden-state matrix")
		}
	}
}

// GRUForwardTo32 runs the GRU cell (the cuDNN form, reset gate applied
// after the recurrent product) forward for a batch of b rows with hidden
// size hid. z is b×4hid (row stride 4hid) holding the pre-activations in
// column blocks [n_x | r | u | n_h]: the input part of the candidate
// W_in·x + b_in, the reset and update gates (input and recurrent parts
// summed) and the recurrent part of the candidate W_hn·h + b_hn. With
// hPrev the previous hidden state (row stride ldp) it computes
//
//	r = σ(z_r),  u = σ(z_u),  n = tanh(n_x + r·n_h),  h = n + u·(hPrev − n)
//
// and writes the gates [n | r | u | n_h] to gates (b×4hid, the layout
// GRUBackward32 reads) and row r of h to h[r*ldh:] and, when h2 is not
// nil, also to h2[r*ldh2:]. The activations are the LSTM cell's (see
// Accuracy, cell activations).
//
// gates may be the same slice as z; h and h2 may be the same as hPrev
// with the same stride (the state updated in place), h2 the same as h;
// nothing else may overlap. It panics if z or gates is shorter than
// 4*b*hid, a stride is smaller than hid or a hidden-state matrix shorter
// than its b rows.
func GRUForwardTo32(gates, z, hPrev []float32, ldp int, h []float32, ldh int, h2 []float32, ldh2 int, b, hid int) {
	if h2 == nil {
		h2, ldh2 = h, ldh
	}
	checkGRU("GRUForwardTo32", b, hid, []int{len(z), len(gates)}, nil, []int{len(hPrev), ldp, len(h), ldh, len(h2), ldh2})
	if b == 0 || hid == 0 {
		return
	}
	nv := asmVectors(hid)
	for r := 0; r < b; r++ {
		zr := z[r*4*hid : (r+1)*4*hid]
		gr := gates[r*4*hid : (r+1)*4*hid]
		hpr := hPrev[r*ldp : r*ldp+hid]
		hr := h[r*ldh : r*ldh+hid]
		hr2 := h2[r*ldh2 : r*ldh2+hid]
		if nv > 0 {
			gruFwdRow32(&zr[0], &gr[0], &hpr[0], &hr[0], &hr2[0], hid, nv)
		}
		for j := nv * 8; j < hid; j++ {
			rg := cellSigmoidF32(zr[hid+j])
			ug := cellSigmoidF32(zr[2*hid+j])
			hn := zr[3*hid+j]
			ng := cellTanhF32(zr[j] + rg*hn)
			gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j] = ng, rg, ug, hn
			v := ng + ug*(hpr[j]-ng)
			hr[j] = v
			hr2[j] = v
		}
	}
}

// GRUBackward32 runs the GRU cell backward. gates is the b×4hid matrix
// [n | r | u | n_h] written by GRUForwardTo32, hPrev its previous hidden
// state (row stride ldp); dh is the loss gradient w.r.t. h from above
// and from the next step's products and dc the gradient w.r.t. h that
// the next step's cell passed back directly (zeros at the last step). It
// writes the pre-activation gradients dz (b×4hid, blocks as z) and
// dcPrev (b×hid):
//
//	d      = dh + dc
//	dn_x   = d·(1−u)·(1−n²)
//	dr     = dn_x·n_h·r·(1−r)
//	du     = d·(hPrev−n)·u·(1−u)
//	dn_h   = dn_x·r
//	dcPrev = d·u
//
// so that the input product's gradient is dz[:, 0:3hid] and the
// recurrent product's dz[:, hid:4hid]. dcPrev may be the same slice as
// dc; nothing else may overlap. It panics if gates or dz is shorter than
// 4*b*hid, dh, dc or dcPrev shorter than b*hid, or hPrev is too short
// for its stride.
func GRUBackward32(gates, hPrev []float32, ldp int, dh, dc, dz, dcPrev []float32, b, hid int) {
	checkGRU("GRUBackward32", b, hid, []int{len(gates), len(dz)}, []int{len(dh), len(dc), len(dcPrev)}, []int{len(hPrev), ldp})
	if b == 0 || hid == 0 {
		return
	}
	nv := asmVectors(hid)
	for r := 0; r < b; r++ {
		gr := gates[r*4*hid : (r+1)*4*hid]
		dzr := dz[r*4*hid : (r+1)*4*hid]
		hpr := hPrev[r*ldp : r*ldp+hid]
		dhr := dh[r*hid : (r+1)*hid]
		dcr := dc[r*hid : (r+1)*hid]
		dcpr := dcPrev[r*hid : (r+1)*hid]
		if nv > 0 {
			gruBwdRow32(&gr[0], &hpr[0], &dhr[0], &dcr[0], &dzr[0], &dcpr[0], hid, nv)
		}
		for j := nv * 8; j < hid; j++ {
			ng, rg, ug, hn := gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j]
			d := dhr[j] + dcr[j]
			dcpr[j] = d * ug
			dzr[2*hid+j] = d * (hpr[j] - ng) * ug * (1 - ug)
			dn := d * (1 - ug) * (1 - ng*ng)
			dzr[j] = dn
			dzr[3*hid+j] = dn * rg
			dzr[hid+j] = dn * hn * rg * (1 - rg)
		}
	}
}

// GRUForwardTo64 is the float64 version of GRUForwardTo32, using
// math.Exp and math.Tanh (no approximations). Shapes, aliasing and panics
// are the same.
func GRUForwardTo64(gates, z, hPrev []float64, ldp int, h []float64, ldh int, h2 []float64, ldh2 int, b, hid int) {
	if h2 == nil {
		h2, ldh2 = h, ldh
	}
	checkGRU("GRUForwardTo64", b, hid, []int{len(z), len(gates)}, nil, []int{len(hPrev), ldp, len(h), ldh, len(h2), ldh2})
	for r := 0; r < b; r++ {
		zr := z[r*4*hid : (r+1)*4*hid]
		gr := gates[r*4*hid : (r+1)*4*hid]
		for j := 0; j < hid; j++ {
			rg := sigmoidF64(zr[hid+j])
			ug := sigmoidF64(zr[2*hid+j])
			hn := zr[3*hid+j]
			ng := math.Tanh(zr[j] + rg*hn)
			gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j] = ng, rg, ug, hn
			v := ng + ug*(hPrev[r*ldp+j]-ng)
			h[r*ldh+j] = v
			h2[r*ldh2+j] = v
		}
	}
}

// GRUBackward64 is the float64 version of GRUBackward32. Shapes,
// formulas, aliasing and panics are the same.
func GRUBackward64(gates, hPrev []float64, ldp int, dh, dc, dz, dcPrev []float64, b, hid int) {
	checkGRU("GRUBackward64", b, hid, []int{len(gates), len(dz)}, []int{len(dh), len(dc), len(dcPrev)}, []int{len(hPrev), ldp})
	for r := 0; r < b; r++ {
		gr := gates[r*4*hid : (r+1)*4*hid]
		dzr := dz[r*4*hid : (r+1)*4*hid]
		for j := 0; j < hid; j++ {
			ng, rg, ug, hn := gr[j], gr[hid+j], gr[2*hid+j], gr[3*hid+j]
			k := r*hid + j
			d := dh[k] + dc[k]
			dcPrev[k] = d * ug
			dzr[2*hid+j] = d * (hPrev[r*ldp+j] - ng) * ug * (1 - ug)
			dn := d * (1 - ug) * (1 - ng*ng)
			dzr[j] = dn
			dzr[3*hid+j] = dn * rg
			dzr[hid+j] = dn * hn * rg * (1 - rg)
		}
	}
}
