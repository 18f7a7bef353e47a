package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// Explanations of published forecasts: on request, the engine's owner
// prepares one from the series' current window and the partition's
// learner (PrepareExplanation), and the requester integrates it on its own
// goroutine (Explaining.Explain). Nothing is stored or written.

// ErrUnknownSeries is returned, wrapped, for a series the partition does
// not hold.
var ErrUnknownSeries = errors.New("pipeline: unknown series")

// ErrNoLearner is returned, wrapped, when the published forecaster has no
// learner to attribute its forecasts through (a baseline such as tsb).
var ErrNoLearner = errors.New("pipeline: the published forecaster has no learner to explain")

// Explaining is a prepared explanation of a series' published forecast.
// It holds copies of what it needs, so Explain may run on any goroutine,
// but one at a time.
type Explaining struct {
	exp  Explanation
	attr *model.Attribution // nil when no learner is explained
}

// Explanation explains a series' published forecast.
type Explanation struct {
	// Series is the series id and Origin the bucket index of its last
	// closed bucket, the origin of its latest forecast.
	Series string
	Origin int64
	// Model is the published forecaster.
	Model string
	// Learner is the learner whose forecast is attributed: the published
	// one, or for auto the candidate learner with the largest weight in
	// the series' mix (the first candidate learner while none has a
	// weight). It is "" when no learner is explained (auto without
	// learner candidates), and Attribution is then nil.
	Learner string
	// Weight is Learner's weight in the published mean: 1 unless Model is
	// auto.
	Weight float64
	// Attribution attributes Learner's forecast to the input groups.
	Attribution *model.Explanation
	// Mix lists auto's candidates with their weights and errors, nil for
	// other models.
	Mix []MixCandidate
	// MinScores is how many scores at every horizon a candidate of auto
	// needs to take part (0 for other models).
	MinScores int
}

// MixCandidate is one of auto's candidates in an Explanation.
type MixCandidate struct {
	// Model is the candidate's name and Weight its weight in the mean.
	Model  string
	Weight float64
	// Quantiles is true for the candidate whose quantiles are published.
	Quantiles bool
	// Error is the candidate's error on the series (the root of its
	// exponentially weighted mean squared error over the scored
	// horizons), NaN until it has been scored at every horizon; Scores is
	// its fewest scores at any horizon.
	Error  float64
	Scores int
	// Eligible is false for a learner that has not taken enough
	// optimizer steps yet (Forecasting.LearnerMinSteps).
	Eligible bool
}

// PrepareExplanation prepares the explanation of the published forecast
// of series id: it copies the series' window and the explained learner's
// forecasting weights and reads auto's mix. It belongs to the engine's
// owner, like every Engine method; Explain runs elsewhere. It returns an
// error wrapping ErrUnknownSeries for a series the partition does not
// hold, model.ErrNoWindow for one without a closed bucket and ErrNoLearner
// when the published forecaster is neither a learner nor auto.
func (e *Engine) PrepareExplanation(id string) (*Explaining, error) {
	s, st, err := e.explainSeries(id)
	if err != nil {
		return nil, err
	}
	if s.Len() == 0 {
		return nil, fmt.Errorf("pipeline: series %q: %w", id, model.ErrNoWindow)
	}
	m := e.roster
	x := &Explaining{exp: Explanation{Series: id, Origin: s.Closed(), Model: m.names[m.fixed], Weight: 1}}
	row := m.fixed
	if m.ens != nil {
		row = m.explainMix(&x.exp, st)
	}
	l := m.learner(row)
	if row < 0 || l == nil {
		if m.ens == nil {
			return nil, fmt.Errorf("pipeline: series %q, model %s: %w", id, x.exp.Model, ErrNoLearner)
		}
		return x, nil
	}
	ex, ok := l.(model.Explainer)
	if !ok {
		return nil, fmt.Errorf("pipeline: series %q, learner %s: %w", id, m.names[row], ErrNoLearner)
	}
	in := model.Input{Start: s.Closed() - int64(s.Len()) + 1, Period: m.period,
		Y: make([]float64, s.Len()), Price: make([]float32, s.Len()), Promo: make([]float32, s.Len())}
	for i := range s.Len() {
		b := s.At(i)
		in.Y[i], in.Price[i], in.Promo[i] = b.Qty, b.Price, b.Promo
	}
	if x.attr, err = ex.PrepareExplanation(&in); err != nil {
		return nil, fmt.Errorf("pipeline: explaining series %q with %s: %w", id, m.names[row], err)
	}
	x.exp.Learner = m.names[row]
	return x, nil
}

// explainSeries returns series id and its ensemble state (nil without
// auto or before its first close): from memory, or, for an evicted
// series, read from the store without taking it back into memory.
func (e *Engine) explainSeries(id string) (*window.Series, *model.EnsembleState, error) {
	if s := e.part.Series(id); s != nil {
		return s, e.roster.states[s], nil
	}
	if s := e.evicted[id]; s != nil {
		return s, e.roster.states[s], nil
	}
	if !e.spilled {
		return nil, nil, fmt.Errorf("pipeline: series %q: %w", id, ErrUnknownSeries)
	}
	view, err := window.NewPartition(e.cfg.Window)
	if err != nil {
		return nil, nil, err
	}
	s, found, err := ReadSeries(e.store, e.p, view, []byte(id))
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline: reading evicted series %q of partition %d: %w", id, e.p, err)
	}
	if !found {
		return nil, nil, fmt.Errorf("pipeline: series %q: %w", id, ErrUnknownSeries)
	}
	var st *model.EnsembleState
	if m := e.roster; m.ens != nil {
		_, err = e.store.Get(key(nil, e.p, kindSelect, []byte(id)), func(v []byte) error {
			var err error
			if st, err = m.ens.DecodeState(v); errors.Is(err, model.ErrEnsembleState) {
				st, err = nil, nil // the series starts selecting afresh, as loadSeries does
			}
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline: reading the ensemble state of evicted series %q of partition %d: %w", id, e.p, err)
		}
	}
	return s, st, nil
}

// explainMix fills in auto's mix of the series with ensemble state st
// (nil before its first close: every candidate unscored) and returns the
// row of the learner to explain, -1 when no candidate is a learner.
func (m *roster) explainMix(exp *Explanation, st *model.EnsembleState) int {
	if st == nil {
		st = m.ens.NewState()
	}
	elig := make([]bool, len(m.cands))
	for c, row := range m.cands {
		l := m.learner(row)
		elig[c] = l == nil || l.Steps() >= m.cfg.LearnerMinSteps
	}
	sd := m.ens.Standing(st, elig)
	exp.MinScores = sd.MinScores
	exp.Mix = make([]MixCandidate, len(m.cands))
	row, best := -1, -1.0
	for c, r := range m.cands {
		exp.Mix[c] = MixCandidate{Model: m.candName[c], Weight: sd.Weights[c], Quantiles: c == sd.Quantiles,
			Error: sd.Errors[c], Scores: sd.Scores[c], Eligible: elig[c]}
		if m.learner(r) != nil && sd.Weights[c] > best {
			row, best = r, sd.Weights[c]
		}
	}
	exp.Weight = math.Max(best, 0)
	return row
}

// Explain integrates the prepared explanation with cfg (see
// model.ExplainConfig) and returns it; the result is the caller's.
func (x *Explaining) Explain(cfg model.ExplainConfig) (*Explanation, error) {
	exp := x.exp
	exp.Mix = slices.Clone(exp.Mix)
	if x.attr == nil {
		return &exp, nil
	}
	a, err := x.attr.Explain(cfg)
	if err != nil {
		return nil, fmt.Errorf("pipeline: explaining series %q: %w", exp.Series, err)
	}
	exp.Attribution = &a
	return &exp, nil
}

// CovariateGroup implements model.CalendarGrouper: the phase of the
// shorter period (the day of the week for daily and weekly buckets, the
// hour of the day for hourly ones), and for hourly buckets the day of the
// week too, belong to the weekly pattern; the position in the year, event
// and SNAP flags to the calendar events.
func (c *calendar) CovariateGroup(j int) model.Group {
	if j < 2 || (j < 4 && c.spec.Width() == window.Hour) {
		return model.GroupWeekly
	}
	return model.GroupCalendar
}

var _ model.CalendarGrouper = (*calendar)(nil)
