package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// closeChunk bounds the series whose inputs are built at once at a close.
const closeChunk = 4096

// roster runs a partition's forecasters at each bucket close: learners
// train on every closing series, then every forecaster forecasts every
// series and the published forecast is made per series. It belongs to its
// partition's goroutine.
type roster struct {
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
	stats    ModelStats // since they were last taken
	closes   int        // closes since the last checkpoint
	trained  bool
	period   int
	learnAll model.LearnStats
	mix      *mixing // nil: learners do not mix (see Engine.SetMixer)

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
	key    []byte // scratch
	val    []byte // scratch
}

func newRoster(cfg *Forecasting, spec window.Spec) (*roster, error) {
	m := &roster{cfg: cfg, states: map[*window.Series]*model.EnsembleState{}, period: spec.Period()}
	var learners []string
	for _, n := range cfg.Names() {
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
		lc.Calendar = newCalendar(spec, cfg.Calendar)
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
		ens, err := newEnsemble(cfg)
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

// appendVersion appends the model version of a row for the series last
// published to dst: a forecaster's version, or auto's mix.
func (m *roster) appendVersion(dst []byte, row int) []byte {
	if m.ens != nil && row == m.fixed {
		return m.autoMix.AppendDescribe(dst, m.candName)
	}
	return append(dst, m.versions[row]...)
}

// learner returns the learner of a row, or nil for a per-series
// forecaster's row.
func (m *roster) learner(row int) model.Learner {
	if row < len(m.series) {
		return nil
	}
	return m.learners[row-len(m.series)]
}

// close runs the forecasters for the series closing a bucket. Learners
// always train; when want is set every forecaster forecasts every series
// and emit gets each series' forecasts with the row to publish, otherwise
// emit gets nil and -1.
func (m *roster) close(bucket int64, closed []*window.Series, want bool, emit func(*window.Series, []*model.Forecast, int) error) error {
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
		if m.mix != nil {
			if err := m.mixRound(bucket); err != nil {
				return err
			}
		}
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
func (m *roster) publish(bucket int64, s *window.Series) int {
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

// ModelStats are what a partition's forecasters did since they were last
// reset, for metrics.
type ModelStats struct {
	// LearnSeconds holds the training time of each close that trained.
	LearnSeconds []float64
	// Steps is the number of optimizer steps taken and Loss their summed
	// training loss.
	Steps int
	Loss  float64
	// WeekAbs sums, per model, the absolute errors of next-week totals
	// scored by auto, and WeekN counts them.
	WeekAbs map[string]float64
	WeekN   map[string]int
}

// Reset empties the statistics, keeping their storage.
func (s *ModelStats) Reset() {
	s.LearnSeconds, s.Steps, s.Loss = s.LearnSeconds[:0], 0, 0
	clear(s.WeekAbs)
	clear(s.WeekN)
}

func (s *ModelStats) learn(d time.Duration, steps int, loss float64) {
	s.LearnSeconds = append(s.LearnSeconds, d.Seconds())
	s.Steps += steps
	s.Loss += loss
}

func (s *ModelStats) scored(name string, absErr float64) {
	if s.WeekAbs == nil {
		s.WeekAbs, s.WeekN = map[string]float64{}, map[string]int{}
	}
	s.WeekAbs[name] += absErr
	s.WeekN[name]++
}

// inputs builds the forecaster inputs of a chunk of series: as many recent
// buckets as the history holds, with prices and promotions, keyed by the
// series' serial number (a series loaded again gets a new key, so the
// LSTM runs its window in full). The slices are set after the appends,
// which may move the arrays.
func (m *roster) inputs(chunk []*window.Series) {
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
func (m *roster) unsaved() bool { return m.trained }

// checkpointKey is the key of a learner's checkpoint in partition p.
func checkpointKey(dst []byte, p int32, name string) []byte {
	return key(dst, p, kindModel, []byte(name))
}

// appendState adds the models' state to a commit: the ensemble states of
// the dirty series as ordinary writes and, every CheckpointEvery closes (or
// when force is set) after training, each learner's checkpoint as a final
// write, with the partition's offset.
func (m *roster) appendState(b Writes, p int32, dirty []*window.Series, force bool) error {
	k, val := m.key[:0], m.val[:0]
	for _, s := range dirty {
		if st := m.states[s]; st != nil {
			val, _ = st.AppendBinary(val[:0])
			k = append(kindPrefix(k[:0], p, kindSelect), s.ID()...)
			b.Set(k, val)
		}
	}
	m.key, m.val = k, val
	if m.mix != nil && slices.Contains(m.mix.dirty, true) {
		force = true // a mixing round is durable with the weights it made
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
			return fmt.Errorf("pipeline: checkpointing %s: %w", m.names[len(m.series)+i], err)
		}
		b.SetFinal(checkpointKey(k[:0], p, m.names[len(m.series)+i]), cp, 0)
	}
	m.closes, m.trained = 0, false
	return m.appendMix(b, p)
}

// load restores the learners' checkpoints of partition p. A checkpoint
// the configured model cannot read is an error, never a silent reset.
func (m *roster) load(db Store, p int32) error {
	for i, l := range m.learners {
		name := m.names[len(m.series)+i]
		bu, ok := l.(model.Checkpointer)
		if !ok {
			continue
		}
		_, err := db.Get(checkpointKey(nil, p, name), func(v []byte) error { return bu.UnmarshalBinary(v) })
		if err != nil {
			return fmt.Errorf("pipeline: partition %d's %s checkpoint does not fit the configured model (delete the state directory or restore the configuration): %w", p, name, err)
		}
	}
	return m.loadMix(db, p)
}

// loadSeries restores the ensemble state of series s of partition p.
func (m *roster) loadSeries(db Store, p int32, s *window.Series) error {
	if m.ens == nil {
		return nil
	}
	_, err := db.Get(key(nil, p, kindSelect, []byte(s.ID())), func(v []byte) error {
		st, err := m.ens.DecodeState(v)
		if errors.Is(err, model.ErrEnsembleState) {
			// The candidates, the horizons or the encoding version
			// changed: the series starts selecting afresh.
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
func (m *roster) forget(s *window.Series) {
	delete(m.states, s)
	for _, l := range m.learners {
		if c, ok := l.(model.Carrier); ok {
			c.Forget(s.Serial())
		}
	}
}
