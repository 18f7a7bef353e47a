package model

// NameGRU identifies the GRU in forecast records and reports.
const NameGRU = "gru"

// GRU is a global online forecaster like LSTM with gated recurrent units
// (Cho et al. 2014) in place of LSTM cells: three gate blocks instead of
// four and one state vector instead of two. Its inputs, head, loss and
// training are those of every global learner (see the package
// documentation, Global learners).
//
// # Network
//
// Layers stacked GRU layers run over the L input steps; the last layer's
// final hidden state feeds the head. Each layer computes, from its input
// x_t and its previous state h_{t-1},
//
//	r = σ(W_xr·x + W_hr·h + b_r)           reset gate
//	u = σ(W_xu·x + W_hu·h + b_u)           update gate
//	n = tanh(W_xn·x + b_xn + r⊙(W_hn·h + b_hn))
//	h_t = (1−u)⊙n + u⊙h_{t−1}
//
// the form of cuDNN and PyTorch, in which the reset gate scales the
// recurrent product rather than the state, so that both products of a
// step are plain matrix products. Update-gate biases start at 1 (the
// counterpart of the LSTM's forget-gate bias: a young model keeps its
// state), the other biases at 0.
//
// # Padding and carried states
//
// As for the LSTM, the state is reset to zero after each padded step, so
// a padded series gets exactly the forecast of its real steps alone, and
// a keyed series carries its state h from one forecast to the next (see
// LearnerConfig.Refresh): layers·hidden float32 per series.
//
// # Memory
//
// At 2x64 (L = 56, 8 features, H = 28, 3 levels) the GRU has 46,448
// parameters, against the LSTM's 58,992. Training scratch keeps, per step
// and layer of each minibatch row, the step input, the gates and the
// gradient of h: the LSTM's without its cell state. Checkpoints are 16
// bytes per parameter plus a header, as the LSTM's.
//
// # Concurrency
//
// A GRU is not safe for concurrent use; the partition's goroutine owns
// it. Steady-state Learn and ForecastBatch calls allocate nothing.
type GRU struct {
	global[*rnnNet[float32], *rnnBufs[float32]]
}

var (
	_ Learner      = (*GRU)(nil)
	_ Checkpointer = (*GRU)(nil)
	_ Carrier      = (*GRU)(nil)
	_ Versioner    = (*GRU)(nil)
)

var gruSpec = learnerSpec[*rnnNet[float32]]{
	name: NameGRU, magic: "tsGRU_ck", version: 1,
	build: func(sh shape, taus []float64, train bool) *rnnNet[float32] {
		return newRNNNet[float32](sh, gruCell, taus, train)
	},
}

// NewGRU returns a GRU with freshly initialised weights for the horizon
// and quantile levels of mcfg. It returns an error naming the field and
// value of an invalid configuration.
func NewGRU(cfg LearnerConfig, mcfg Config) (*GRU, error) {
	g, err := newGlobal[*rnnNet[float32], *rnnBufs[float32]](cfg, mcfg, &gruSpec)
	if err != nil {
		return nil, err
	}
	return &GRU{g}, nil
}

// Name returns "gru".
func (*GRU) Name() string { return NameGRU }

// Forget drops the carried state of the series with key, for a caller
// that will not forecast it under that key again (see Input.Key).
func (m *GRU) Forget(key uint64) { m.forget(key) }
