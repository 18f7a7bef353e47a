package stream

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream/source"
	"github.com/trendstream/trendstream/window"
)

// NameAuto is the published forecaster that combines, per series,
// candidate forecasters by their recent accuracy (see model.Ensemble).
const NameAuto = "auto"

// Forecasting configures the forecasters of every partition. The zero
// value of each field means its default.
type Forecasting struct {
	// Model sets the horizon and quantile levels, which must include 0.1,
	// 0.5 and 0.9.
	Model model.Config
	// Published is the forecaster whose forecasts are published: a
	// baseline (see model.Baselines), "lstm", or "auto", which publishes
	// per series the candidates' means weighted by their recent accuracy
	// and the quantiles of the candidate with the best recent ones. The
	// default is "auto".
	Published string
	// Candidates are auto's parts. The default is lstm, tsb and ma28.
	Candidates []string
	// Fallback is the candidate auto publishes alone until the candidates
	// have been scored. The default is tsb.
	Fallback string
	// Also lists further forecasters to run, for backtests to evaluate.
	Also []string
	// Learner configures the learners that run (see model.Learners).
	Learner model.LearnerConfig
	// LearnerMinSteps is how many optimizer steps a learner must have
	// taken before auto may use it. The default is 50.
	LearnerMinSteps int64
	// CheckpointEvery is how many bucket closes pass between checkpoints
	// of a learned model's state into the partition's commit; revocation
	// and shutdown commit the last batch with a checkpoint too. The
	// default is 1, every close.
	CheckpointEvery int
	// Calendar, when set, adds its event and SNAP flags, from
	// CalendarStart on, to the LSTM's calendar covariates.
	Calendar      *source.M5Calendar
	CalendarStart time.Time
}

func (f *Forecasting) setDefaults() error {
	if f.Published == "" {
		f.Published = NameAuto
	}
	if len(f.Candidates) == 0 {
		f.Candidates = []string{model.NameLSTM, model.NameTSB, model.NameMA28}
	}
	if f.Fallback == "" {
		f.Fallback = model.NameTSB
	}
	if f.LearnerMinSteps == 0 {
		f.LearnerMinSteps = 50
	}
	if f.CheckpointEvery == 0 {
		f.CheckpointEvery = 1
	}
	if err := f.Model.Validate(); err != nil {
		return err
	}
	for _, q := range requiredLevels {
		if !slices.Contains(f.Model.Levels, q) {
			return fmt.Errorf("stream: quantile levels %v lack the required level %v", f.Model.Levels, q)
		}
	}
	if f.Published == NameAuto && !slices.Contains(f.Candidates, f.Fallback) {
		return fmt.Errorf("stream: fallback %q is not among the candidates %v", f.Fallback, f.Candidates)
	}
	if f.LearnerMinSteps < 0 {
		return fmt.Errorf("stream: LearnerMinSteps %d is negative", f.LearnerMinSteps)
	}
	if f.CheckpointEvery < 1 {
		return fmt.Errorf("stream: CheckpointEvery %d is negative", f.CheckpointEvery)
	}
	for _, n := range f.names() {
		if !slices.Contains(model.Baselines, n) && !model.IsLearner(n) {
			return fmt.Errorf("stream: unknown forecaster %q (have %v, %v and %s)", n, model.Baselines, model.Learners, NameAuto)
		}
	}
	return nil
}

// names returns the forecasters to run, baselines in their report order,
// then the learners in theirs.
func (f *Forecasting) names() []string {
	want := slices.Clone(f.Also)
	if f.Published == NameAuto {
		want = append(want, f.Candidates...)
	} else {
		want = append(want, f.Published)
	}
	var out []string
	for _, n := range slices.Concat(model.Baselines, model.Learners) {
		if slices.Contains(want, n) {
			out = append(out, n)
		}
	}
	for _, n := range want {
		if !slices.Contains(out, n) {
			out = append(out, n) // unknown: setDefaults reports it
		}
	}
	return out
}

// history returns the closed buckets the forecasters need per series.
func (f *Forecasting) history() int {
	h := baseWindow
	if slices.ContainsFunc(f.names(), model.IsLearner) {
		h = max(h, f.learnerWindow()+f.Model.Horizon+28)
	}
	return h
}

func (f *Forecasting) learnerWindow() int {
	if f.Learner.Window > 0 {
		return f.Learner.Window
	}
	return 56
}

// baseWindow is the number of recent buckets the classical forecasters see.
const baseWindow = 84

// closeChunk bounds the series whose inputs are built at once at a close.
const closeChunk = 4096

// models runs a partition's forecasters at each bucket close: global
// learners train on every closing series, then every forecaster forecasts
// every series and the published forecast is made per series. It belongs
// to its partition's goroutine.
type models struct {
	cfg      *Forecasting
	names    []string           // of the rows, then "auto" when it runs
	series   []model.Forecaster // rows 0..len(series)-1
	learners []model.Learner    // the rows after them
	versions []string

	ens      *model.Ensemble // nil: publish row fixed
	cands    []int
	candName []string
	fixed    int
	states   map[*window.Series]*model.EnsembleState
	auto     *model.Forecast
	autoMix  model.Mix
	weights  []float64
	stats    modelStats // since the task last reported them
	closes   int        // closes since the last checkpoint
	trained  bool
	period   int
	learnAll model.LearnStats

	in     []model.Input
	base   model.Input // the window of in[i] the per-series forecasters see
	qty    []float64
	price  []float32
	promo  []float32
	lfc    [][]*model.Forecast // per learner, per series of the chunk
	sfc    []*model.Forecast   // per per-series forecaster
	row    []*model.Forecast
	cfc    []*model.Forecast // ensemble candidates
	elig   []bool
	recent []float64
}

func newModels(cfg *Forecasting, spec window.Spec) (*models, error) {
	m := &models{cfg: cfg, states: map[*window.Series]*model.EnsembleState{}, period: spec.Period()}
	var learners []string
	for _, n := range cfg.names() {
		if model.IsLearner(n) {
			learners = append(learners, n)
			continue
		}
		f, err := model.New(n, cfg.Model)
		if err != nil {
			return nil, err
		}
		m.series = append(m.series, f)
		m.names = append(m.names, n)
		m.sfc = append(m.sfc, model.NewForecast(cfg.Model))
	}
	for _, n := range learners {
		lc := cfg.Learner
		lc.Calendar = newCalendar(spec, cfg.Calendar, cfg.CalendarStart)
		l, err := model.NewLearner(n, lc, cfg.Model)
		if err != nil {
			return nil, err
		}
		m.learners = append(m.learners, l)
		m.names = append(m.names, n)
		m.lfc = append(m.lfc, nil)
	}
	if cfg.Published == NameAuto {
		for _, c := range cfg.Candidates {
			m.cands = append(m.cands, slices.Index(m.names, c))
		}
		m.candName = cfg.Candidates
		ens, err := model.NewEnsemble(model.EnsembleConfig{Candidates: len(m.cands),
			Fallback: slices.Index(cfg.Candidates, cfg.Fallback)})
		if err != nil {
			return nil, err
		}
		m.ens = ens
		m.cfc = make([]*model.Forecast, len(m.cands))
		m.elig = make([]bool, len(m.cands))
		m.weights = make([]float64, 2*len(m.cands)+1)
		m.auto = model.NewForecast(cfg.Model)
		m.fixed = len(m.names)
		m.names = append(m.names, NameAuto)
	} else {
		m.fixed = slices.Index(m.names, cfg.Published)
	}
	m.versions = make([]string, len(m.names))
	m.row = make([]*model.Forecast, len(m.names))
	return m, nil
}

// version returns the model version of a row for the series last
// published: a forecaster's version, or auto's mix.
func (m *models) version(row int) string {
	if m.ens != nil && row == m.fixed {
		return m.autoMix.Describe(m.candName)
	}
	return m.versions[row]
}

// learner returns the learner of a row, or nil for a per-series
// forecaster's row.
func (m *models) learner(row int) model.Learner {
	if row < len(m.series) {
		return nil
	}
	return m.learners[row-len(m.series)]
}

// close runs the forecasters for the series closing a bucket. Learners
// always train; when want is set every forecaster forecasts every series
// and emit gets each series' forecasts with the row to publish, otherwise
// emit gets nil and -1.
func (m *models) close(bucket int64, closed []*window.Series, want bool, emit func(*window.Series, []*model.Forecast, int) error) error {
	if len(m.learners) > 0 {
		started := time.Now()
		var loss float64
		var steps int
		for start := 0; start < len(closed); start += closeChunk {
			chunk := closed[start:min(start+closeChunk, len(closed))]
			m.inputs(chunk)
			for _, l := range m.learners {
				st := l.Learn(m.in)
				m.learnAll.Examples += st.Examples
				m.learnAll.Steps += st.Steps
				m.learnAll.Skipped += st.Skipped
				m.trained = m.trained || st.Steps > 0
				loss += st.Loss * float64(st.Steps)
				steps += st.Steps
			}
		}
		m.stats.learn(time.Since(started), steps, loss)
		m.closes++
	}
	if !want {
		for _, s := range closed {
			if err := emit(s, nil, -1); err != nil {
				return err
			}
		}
		return nil
	}
	for i, f := range m.series {
		m.versions[i] = model.Version(f)
	}
	for i, l := range m.learners {
		m.versions[len(m.series)+i] = model.Version(l)
	}
	for start := 0; start < len(closed); start += closeChunk {
		chunk := closed[start:min(start+closeChunk, len(closed))]
		m.inputs(chunk)
		for k, l := range m.learners {
			for len(m.lfc[k]) < len(chunk) {
				m.lfc[k] = append(m.lfc[k], model.NewForecast(m.cfg.Model))
			}
			l.ForecastBatch(m.lfc[k][:len(chunk)], m.in)
		}
		for i, s := range chunk {
			in := &m.base
			*in = m.in[i]
			if n := len(in.Y); n > baseWindow {
				in.Y, in.Start = in.Y[n-baseWindow:], in.Start+int64(n-baseWindow)
			}
			for k, f := range m.series {
				f.Forecast(m.sfc[k], in)
				m.row[k] = m.sfc[k]
			}
			for k := range m.learners {
				m.row[len(m.series)+k] = m.lfc[k][i]
			}
			pub := m.publish(bucket, s)
			if err := emit(s, m.row, pub); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish returns the row to publish for a series at a close, making
// auto's forecast first when it runs.
func (m *models) publish(bucket int64, s *window.Series) int {
	if m.ens == nil {
		return m.fixed
	}
	st := m.states[s]
	if st == nil {
		st = m.ens.NewState()
		m.states[s] = st
	}
	for c, row := range m.cands {
		m.cfc[c] = m.row[row]
		m.elig[c] = true
		if l := m.learner(row); l != nil && l.Steps() < m.cfg.LearnerMinSteps {
			m.elig[c] = false
		}
	}
	m.recent = s.QtyTo(m.recent[:0], 7)
	m.autoMix = m.ens.Update(st, bucket, m.recent, m.cfc, m.elig, m.auto, m.weights)
	m.row[m.fixed] = m.auto
	for c, e := range m.autoMix.Errors {
		if !math.IsNaN(e) {
			name := NameAuto
			if c < len(m.candName) {
				name = m.candName[c]
			}
			m.stats.scored(name, e)
		}
	}
	return m.fixed
}

// modelStats collect what the models did between two reports to the
// metrics.
type modelStats struct {
	learnSeconds []float64 // one per close that trained
	steps        int
	loss         float64 // summed over steps
	weekAbs      map[string]float64
	weekN        map[string]int
}

func (s *modelStats) learn(d time.Duration, steps int, loss float64) {
	s.learnSeconds = append(s.learnSeconds, d.Seconds())
	s.steps += steps
	s.loss += loss
}

func (s *modelStats) scored(name string, absErr float64) {
	if s.weekAbs == nil {
		s.weekAbs, s.weekN = map[string]float64{}, map[string]int{}
	}
	s.weekAbs[name] += absErr
	s.weekN[name]++
}

// inputs builds the forecaster inputs of a chunk of series: as many recent
// buckets as the history holds, with prices and promotions, keyed by the
// series' serial number (a series loaded again gets a new key, so the
// LSTM runs its window in full). The slices are set after the appends,
// which may move the arrays.
func (m *models) inputs(chunk []*window.Series) {
	m.in, m.qty, m.price, m.promo = m.in[:0], m.qty[:0], m.price[:0], m.promo[:0]
	for _, s := range chunk {
		for i := range s.Len() {
			b := s.At(i)
			m.qty = append(m.qty, b.Qty)
			m.price = append(m.price, b.Price)
			m.promo = append(m.promo, b.Promo)
		}
		m.in = append(m.in, model.Input{Start: s.Closed() - int64(s.Len()) + 1, Period: m.period,
			Key: s.Serial()})
	}
	off := 0
	for i, s := range chunk {
		n := s.Len()
		m.in[i].Y, m.in[i].Price, m.in[i].Promo = m.qty[off:off+n:off+n], m.price[off:off+n:off+n], m.promo[off:off+n:off+n]
		off += n
	}
}

// unsaved reports whether a learner has trained since its last checkpoint.
func (m *models) unsaved() bool { return m.trained }

// checkpointKey is the key of a learner's checkpoint in partition p.
func checkpointKey(dst []byte, p int32, name string) []byte {
	return state.Key(dst, p, state.KindModel, []byte(name))
}

// appendState adds the models' state to a commit: the ensemble states of
// the dirty series as ordinary writes and, every CheckpointEvery closes (or
// when force is set) after training, each learner's checkpoint as a final
// write, with the partition's offset.
func (m *models) appendState(b *state.Batch, p int32, dirty []*window.Series, force bool) error {
	var key, val []byte
	for _, s := range dirty {
		if st := m.states[s]; st != nil {
			val, _ = st.AppendBinary(val[:0])
			b.Set(state.Key(key[:0], p, state.KindSelect, []byte(s.ID())), val)
		}
	}
	if !m.trained || (m.closes < m.cfg.CheckpointEvery && !force) {
		return nil
	}
	for i, l := range m.learners {
		bm, ok := l.(model.Checkpointer)
		if !ok {
			continue
		}
		cp, err := bm.MarshalBinary()
		if err != nil {
			return fmt.Errorf("stream: checkpointing %s: %w", m.names[len(m.series)+i], err)
		}
		b.SetFinal(checkpointKey(key[:0], p, m.names[len(m.series)+i]), cp, 0)
	}
	m.closes, m.trained = 0, false
	return nil
}

// load restores the learners' checkpoints of partition p. A checkpoint
// the configured model cannot read is an error, never a silent reset.
func (m *models) load(db *state.DB, p int32) error {
	for i, l := range m.learners {
		name := m.names[len(m.series)+i]
		bu, ok := l.(model.Checkpointer)
		if !ok {
			continue
		}
		_, err := db.Get(checkpointKey(nil, p, name), func(v []byte) error { return bu.UnmarshalBinary(v) })
		if err != nil {
			return fmt.Errorf("stream: partition %d's %s checkpoint does not fit the configured model (delete the state directory or restore the configuration): %w", p, name, err)
		}
	}
	return nil
}

// loadSeries restores the ensemble state of series s of partition p.
func (m *models) loadSeries(db *state.DB, p int32, s *window.Series) error {
	if m.ens == nil {
		return nil
	}
	_, err := db.Get(state.Key(nil, p, state.KindSelect, []byte(s.ID())), func(v []byte) error {
		st, err := m.ens.DecodeState(v)
		if errors.Is(err, model.ErrEnsembleState) {
			// The candidates changed: the series starts selecting afresh.
			return nil
		}
		if err == nil {
			m.states[s] = st
		}
		return err
	})
	return err
}

// forget drops what the models keep for a series evicted from memory.
func (m *models) forget(s *window.Series) {
	delete(m.states, s)
	for _, l := range m.learners {
		if c, ok := l.(model.Carrier); ok {
			c.Forget(s.Serial())
		}
	}
}
