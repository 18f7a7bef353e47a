package model

// NameLSTM identifies the LSTM in forecast records and reports.
const NameLSTM = "lstm"

// LSTM is a global online forecaster: one network shared by all series of
// a partition, trained with Adam on the examples each bucket close
// completes and forecasting a mean and quantiles for H steps. Its inputs,
// head, loss and training are those of every global learner (see the
// package documentation, Global learners).
//
// # Network
//
// Layers stacked LSTM layers (gates [i | f | g | o], forget-gate bias
// initialised to 1) run over the L input steps; the last layer's final
// hidden state feeds the head.
//
// # Padding
//
// A window longer than the history is left-padded. After each padded step
// the LSTM state of that series is reset to zero, so the state entering
// its first real step is the initial state: a padded series gets exactly
// the forecast it would get from the same model run over its real steps
// only, and padded steps neither influence outputs nor receive gradients.
//
// # Memory
//
// At 2x64 (L = 56, 8 features, H = 28, 3 levels: 58,992 parameters) the
// weights, gradients, Adam moments, a rollback copy, the forecasting
// average and packed copies of both take 2.5 MB. Training scratch keeps
// every step of every layer, about 250 KB per minibatch row: 15 MB at
// MiniBatch 64, 100 MB at 413. Forecasting scratch is 1.4 MB. A
// checkpoint is 16 bytes per parameter plus a header: 944,000 bytes. Each
// keyed series' carried state takes 2·layers·hidden float32 (512 bytes at
// the default 2x32) and about 70 bytes of bookkeeping; carried states are
// not checkpointed, so after a restart (or UnmarshalBinary) each series
// runs its window in full once.
//
// # Concurrency
//
// An LSTM is not safe for concurrent use; the partition's goroutine owns
// it. Steady-state Learn and ForecastBatch calls allocate nothing: scratch
// is sized for the largest minibatch (at most MiniBatch rows) and the
// largest forecast chunk (at most 256 rows) seen and kept.
type LSTM struct {
	global[*rnnNet[float32], *rnnBufs[float32]]
}

var (
	_ Learner      = (*LSTM)(nil)
	_ Checkpointer = (*LSTM)(nil)
	_ Carrier      = (*LSTM)(nil)
	_ Versioner    = (*LSTM)(nil)
)

// lstmMagic and lstmFormatVersion identify LSTM checkpoints. Version 1 had
// no average block.
const (
	lstmMagic         = "tsLSTMck"
	lstmFormatVersion = 2
)

var lstmSpec = learnerSpec[*rnnNet[float32]]{
	name: NameLSTM, magic: lstmMagic, version: lstmFormatVersion, noAverage: 1,
	build: func(sh shape, taus []float64, train bool) *rnnNet[float32] {
		return newRNNNet[float32](sh, lstmCell, taus, train)
	},
}

// NewLSTM returns an LSTM with freshly initialised weights for the
// horizon and quantile levels of mcfg. It returns an error naming the
// field and value of an invalid configuration.
func NewLSTM(cfg LearnerConfig, mcfg Config) (*LSTM, error) {
	g, err := newGlobal[*rnnNet[float32], *rnnBufs[float32]](cfg, mcfg, &lstmSpec)
	if err != nil {
		return nil, err
	}
	return &LSTM{g}, nil
}

// Name returns "lstm".
func (*LSTM) Name() string { return NameLSTM }

// Forget drops the carried state of the series with key, for a caller
// that will not forecast it under that key again (see Input.Key).
func (m *LSTM) Forget(key uint64) { m.forget(key) }
