package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// newEnsemble returns auto's ensemble for cfg, which publishes auto. The
// roster and the Inspector build it here alike, so the Inspector reads
// the states the roster writes.
func newEnsemble(cfg *Forecasting) (*model.Ensemble, error) {
	fallback := -1
	for i, c := range cfg.Candidates {
		if c == cfg.Fallback {
			fallback = i
		}
	}
	return model.NewEnsemble(model.EnsembleConfig{Candidates: len(cfg.Candidates), Fallback: fallback,
		Horizons: model.EnsembleHorizons(cfg.Model.Horizon)})
}

// Inspector reads what auto keeps about its candidates for each series
// from the committed state, for people: each candidate's forecast at the
// series' latest close (its means at the horizons auto scores, its
// next-bucket quantiles) and its online errors on the series. Nothing is
// kept for this beyond what auto needs to weigh its candidates, so
// reading it costs the close path nothing. An Inspector is safe for
// concurrent use.
type Inspector struct {
	ens    *model.Ensemble
	names  []string
	levels []float64
	spec   window.Spec
}

// ErrNoEnsemble is returned by NewInspector for a configuration that does
// not publish auto: no forecaster's errors are kept per series then.
var ErrNoEnsemble = errors.New("pipeline: the published forecaster is not " + NameAuto + ", so no candidates are scored per series")

// NewInspector returns an Inspector of the state engines with cfg write.
func NewInspector(cfg Config) (*Inspector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Published != NameAuto {
		return nil, ErrNoEnsemble
	}
	ens, err := newEnsemble(&cfg.Forecasting)
	if err != nil {
		return nil, err
	}
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		return nil, err
	}
	return &Inspector{ens: ens, names: cfg.Candidates, levels: cfg.Model.Levels, spec: spec}, nil
}

// SeriesCandidates is what auto keeps about its candidates for one series.
type SeriesCandidates struct {
	// Origin is the start of the bucket whose close the candidates'
	// forecasts were made at, the origin of the forecast published then;
	// zero (and the forecasts empty) when none was made yet.
	Origin time.Time
	// Horizons are the steps ahead auto scores at; Starts their buckets'
	// starts from Origin.
	Horizons []int
	Starts   []time.Time
	// Levels are the quantile levels of the candidates' Quantiles.
	Levels []float64
	// Window is the number of buckets the candidates' WindowTotal spans.
	Window int
	// Candidates holds each candidate, in the configured order.
	Candidates []Candidate
}

// Candidate is one of auto's candidates on a series.
type Candidate struct {
	// Name names the forecaster.
	Name string
	model.EnsembleCandidate
}

// Candidates returns what the committed state of partition p holds about
// auto's candidates on series id. found is false when it holds nothing
// the configured ensemble can read: the series has not closed a bucket
// yet, or its state was written for other candidates or horizons.
func (in *Inspector) Candidates(st Store, p int32, id []byte) (sc *SeriesCandidates, found bool, err error) {
	var es *model.EnsembleState
	found, err = st.Get(key(nil, p, kindSelect, id), func(v []byte) error {
		es, err = in.ens.DecodeState(v)
		return err
	})
	switch {
	case errors.Is(err, model.ErrEnsembleState):
		return nil, false, nil // as loadSeries: the series selects afresh
	case err != nil:
		return nil, false, fmt.Errorf("pipeline: reading the ensemble state of %q: %w", id, err)
	case !found:
		return nil, false, nil
	}
	latest, ok, cands := in.ens.Inspect(es)
	sc = &SeriesCandidates{Horizons: in.ens.Horizons(), Levels: in.levels, Window: in.ens.Window(), Candidates: make([]Candidate, len(cands))}
	for i, c := range cands {
		sc.Candidates[i] = Candidate{Name: in.names[i], EnsembleCandidate: c}
	}
	if ok {
		sc.Origin = in.spec.Start(latest)
		for _, h := range sc.Horizons {
			sc.Starts = append(sc.Starts, in.spec.Start(latest+int64(h)))
		}
	}
	return sc, true, nil
}
