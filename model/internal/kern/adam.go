package kern

import "math"

// Adam32 applies one AdamW step (Loshchilov & Hutter, decoupled weight
// decay) to params given grads, updating the moment buffers m and v in
// place:
//
//	m = beta1*m + (1-beta1)*g
//	v = beta2*v + (1-beta2)*g²
//	params = params*(1 - lr*weightDecay) - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)
//
// bc1 and bc2 are the bias corrections 1-beta1^t and 1-beta2^t for the
// 1-based step t, computed by the caller (pass 1, 1 to disable bias
// correction). This matches PyTorch's torch.optim.AdamW. All four slices
// must have the same length (it panics otherwise) and must not overlap.
func Adam32(params, grads, m, v []float32, lr, beta1, beta2, eps, weightDecay, bc1, bc2 float32) {
	n := len(params)
	if len(grads) != n || len(m) != n || len(v) != n {
		panic("kern: Adam32: length mismatch")
	}
	hp := [8]float32{beta1, 1 - beta1, beta2, 1 - beta2, eps, 1 - lr*weightDecay, lr / bc1, float32(1 / math.Sqrt(float64(bc2)))}
	i := 0
	if useAsm && n >= 8 {
		i = n &^ 7
		adam32(&params[0], &grads[0], &m[0], &v[0], i, &hp)
	}
	for ; i < n; i++ {
		g := grads[i]
		mi := hp[0]*m[i] + hp[1]*g
		vi := hp[2]*v[i] + hp[3]*(g*g)
		m[i], v[i] = mi, vi
		den := float32(math.Sqrt(float64(vi)))*hp[7] + hp[4]
		params[i] = params[i]*hp[5] - hp[6]*(mi/den)
	}
}

// Adam64 is the float64 version of Adam32, with the same formula, length
// requirements and panics.
func Adam64(params, grads, m, v []float64, lr, beta1, beta2, eps, weightDecay, bc1, bc2 float64) {
	n := len(params)
	if len(grads) != n || len(m) != n || len(v) != n {
		panic("kern: Adam64: length mismatch")
	}
	decay := 1 - lr*weightDecay
	step := lr / bc1
	rsb2 := 1 / math.Sqrt(bc2)
	for i, g := range grads[:n] {
		mi := beta1*m[i] + (1-beta1)*g
		vi := beta2*v[i] + (1-beta2)*(g*g)
		m[i], v[i] = mi, vi
		params[i] = params[i]*decay - step*(mi/(math.Sqrt(vi)*rsb2+eps))
	}
}
