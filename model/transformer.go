package model

import "fmt"

// NameTransformer identifies the Transformer in forecast records and
// reports.
const NameTransformer = "transformer"

// Transformer is a global online forecaster with a small Transformer
// encoder (Vaswani et al. 2017) over the input window. Its inputs, head,
// loss and training are those of every global learner (see the package
// documentation, Global learners).
//
// # Network
//
// The features of each of the L steps are projected to the model width
// d = Hidden and added to a sinusoidal positional encoding of the step's
// age (the last step is position 0). Layers pre-norm encoder blocks
// follow, each
//
//	H = X + Attn(LN_1(X)),  X' = H + W2·GELU(W1·LN_2(H))
//
// with causal multi-head self-attention (Heads heads of width d/Heads,
// see LearnerConfig.Heads; step t attends to the real steps up to t), a
// feed-forward layer 4·d wide and layer norms with gains and biases. The
// last step's output, layer-normed once more, feeds the head. Weights are
// initialised uniform in ±1/√fan_in, biases at 0, layer-norm gains at 1;
// layer-norm parameters and biases are not decayed.
//
// # Padding
//
// A window longer than the history is left-padded. Padded steps are
// masked out as keys (their weights are exactly zero), and since
// positions count back from the last step, a padded series gets exactly
// the forecast it would get from the same model run over its real steps
// only.
//
// # No carried state
//
// Every forecast runs the whole window: attention looks at every step,
// so there is no small state to carry from one close to the next, and
// LearnerConfig.Refresh does not apply.
//
// # Memory
//
// With d = Hidden, training keeps every block's activations and
// attention weights, about (22·d + Heads·L)·L floats per minibatch row
// for each block but the last, 8·d·L for the last (its keys and values),
// and 13·d·L of gradient scratch: about 330 KB per row at 2x32 with
// L = 56, 85 MB at MiniBatch 256. Forecasting keeps one block's activations, about 22·d·L floats per
// window of a chunk of up to 256. Checkpoints are 16 bytes per parameter
// plus a header (29,456 parameters at 2x32 with 8 features, H = 28 and 3
// levels).
//
// # Concurrency
//
// A Transformer is not safe for concurrent use; the partition's
// goroutine owns it. Steady-state Learn and ForecastBatch calls allocate
// nothing.
type Transformer struct {
	global[*trfNet[float32], *trfBufs[float32]]
}

var (
	_ Learner      = (*Transformer)(nil)
	_ Checkpointer = (*Transformer)(nil)
	_ Versioner    = (*Transformer)(nil)
)

var transformerSpec = learnerSpec[*trfNet[float32]]{
	name: NameTransformer, magic: "tsTRFMck", version: 1, heads: true,
	build: func(sh shape, taus []float64, train bool) *trfNet[float32] {
		return newTrfNet[float32](sh, taus, train)
	},
}

// NewTransformer returns a Transformer with freshly initialised weights
// for the horizon and quantile levels of mcfg. It returns an error naming
// the field and value of an invalid configuration.
func NewTransformer(cfg LearnerConfig, mcfg Config) (*Transformer, error) {
	g, err := newGlobal[*trfNet[float32], *trfBufs[float32]](cfg, mcfg, &transformerSpec)
	if err != nil {
		return nil, err
	}
	return &Transformer{g}, nil
}

// Name returns "transformer".
func (*Transformer) Name() string { return NameTransformer }

// Version describes the architecture and training progress, for the
// model_version of forecast records: "2x32h2/steps=1234" is 2 blocks of
// width 32 with 2 heads after 1234 optimizer steps.
func (m *Transformer) Version() string {
	return fmt.Sprintf("%dx%dh%d/steps=%d", m.sh.layers, m.sh.hidden, m.sh.heads, m.net.step)
}
