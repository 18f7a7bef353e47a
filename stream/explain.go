package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// Explanations on the Kafka side: a partition's engine belongs to its
// task's goroutine, so an explanation request borrows it through the
// partition's gate, which the task holds except while it waits for
// records. Under the gate the request only copies the series' window and
// the learner's weights (pipeline.Engine.PrepareExplanation); the
// integration runs on the request's goroutine, at most explainParallel
// at a time per instance.

// explainParallel bounds the explanations under way at once: half the
// cores the process may use, at least one and at most two, so that
// requests cannot take every core from the partitions' tasks (see the
// README, Explanations, for the cost of one). A request takes its slot
// before it borrows a partition's engine, so that at most this many
// requests wait on a task or hold a copy of a learner.
var explainParallel = min(2, max(1, runtime.GOMAXPROCS(0)/2))

// explainers holds the gates of the partitions whose tasks run here.
type explainers struct {
	mu    sync.Mutex
	gates map[int32]*engineGate
	slots chan struct{} // explainParallel tokens
}

func newExplainers() explainers {
	return explainers{gates: map[int32]*engineGate{}, slots: make(chan struct{}, explainParallel)}
}

// engineGate lends a partition's engine: holding its token owns the
// engine. done is closed when the task has stopped for good.
type engineGate struct {
	token chan struct{}
	done  chan struct{}
	eng   *pipeline.Engine
}

// open registers the gate of partition part's task, held by the task.
func (x *explainers) open(part int32, eng *pipeline.Engine) *engineGate {
	g := &engineGate{token: make(chan struct{}, 1), done: make(chan struct{}), eng: eng}
	g.token <- struct{}{}
	x.mu.Lock()
	x.gates[part] = g
	x.mu.Unlock()
	return g
}

// close unregisters a task's gate as the task stops, holding it, so that
// no request waits on it or takes it afterwards.
func (x *explainers) close(part int32, g *engineGate) {
	x.mu.Lock()
	if x.gates[part] == g {
		delete(x.gates, part)
	}
	x.mu.Unlock()
	close(g.done)
}

func (x *explainers) gate(part int32) *engineGate {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.gates[part]
}

// take blocks until the task holds the engine again.
func (g *engineGate) take() { g.token <- struct{}{} }

// release lends the engine until the next take.
func (g *engineGate) release() { <-g.token }

// borrow takes the engine for a request, or returns errTaskStopped once
// the task has stopped, or ctx's error.
func (g *engineGate) borrow(ctx context.Context) error {
	select {
	case g.token <- struct{}{}:
		select {
		case <-g.done:
			<-g.token
			return errTaskStopped
		default:
			return nil
		}
	case <-g.done:
		return errTaskStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errTaskStopped = errors.New("stream: the partition's task stopped")

// prepare borrows the engine to copy what explaining series id needs,
// and hands it back however the copy ends.
func (g *engineGate) prepare(ctx context.Context, id string) (*pipeline.Explaining, window.Spec, error) {
	if err := g.borrow(ctx); err != nil {
		return nil, window.Spec{}, err
	}
	defer g.release()
	x, err := g.eng.PrepareExplanation(id)
	return x, g.eng.Spec(), err
}

// ExplainResponse is the body of GET /v1/series/{store}/{sku}/explain
// (schema/explanation.schema.json).
type ExplainResponse struct {
	// Series is the series id and Partition its input partition.
	Series    string `json:"series"`
	Partition int32  `json:"partition"`
	// Origin is the start of the series' last closed bucket, the origin of
	// its latest forecast.
	Origin time.Time `json:"origin"`
	// Model is the published model; Learner the learner attributed and
	// LearnerWeight its weight in the published mean (1 unless Model is
	// auto); Learner is "" and Attribution null when auto has no learner
	// candidate.
	Model         string  `json:"model"`
	Learner       string  `json:"learner"`
	LearnerWeight float64 `json:"learner_weight"`
	// Attribution attributes the learner's mean forecast of the next
	// buckets to the input groups.
	Attribution *AttributionJSON `json:"attribution"`
	// Mix lists auto's candidates, null for other models; MinScores is
	// the scores a candidate needs at every horizon to take part.
	Mix       []MixCandidateJSON `json:"mix"`
	MinScores int                `json:"min_scores,omitempty"`
}

// AttributionJSON is the attribution of an ExplainResponse.
type AttributionJSON struct {
	// Buckets is the number of forecast buckets averaged and Steps the
	// integration steps.
	Buckets int `json:"buckets"`
	Steps   int `json:"steps"`
	// Forecast is the learner's mean forecast of the buckets from the
	// series' window, Baseline that from the baseline input.
	Forecast float64 `json:"forecast"`
	Baseline float64 `json:"baseline"`
	// Groups maps each input group to its attribution; they sum to
	// Forecast - Baseline - Residual.
	Groups   map[string]float64 `json:"groups"`
	Residual float64            `json:"residual"`
}

// MixCandidateJSON is one of auto's candidates in an ExplainResponse.
type MixCandidateJSON struct {
	Model     string   `json:"model"`
	Weight    float64  `json:"weight"`
	Quantiles bool     `json:"quantiles"`
	Error     *float64 `json:"error"` // null until scored at every horizon
	Scores    int      `json:"scores"`
	Eligible  bool     `json:"eligible"`
}

// ErrNoLearner is wrapped by Explain's error when the published model has
// no learner to attribute through.
var ErrNoLearner = pipeline.ErrNoLearner

// errBadRequest marks an invalid explanation setting.
var errBadRequest = errors.New("bad request")

// Explain explains the latest forecast of series id ("STORE/SKU") with
// cfg. It returns an error wrapping ErrNotFound for a series this
// instance does not serve or without a closed bucket, ErrNoLearner when
// the published model is a baseline and errBadRequest for an invalid cfg.
func (p *Processor) Explain(ctx context.Context, id string, cfg model.ExplainConfig) (*ExplainResponse, error) {
	var part int32
	err := p.db.View(func(st *state.Snapshot) error {
		var found bool
		var err error
		part, found, err = pipeline.SeriesPartition(st, []byte(id))
		if err == nil && !found {
			err = fmt.Errorf("series %q: %w", id, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	g := p.explain.gate(part)
	if g == nil || !p.Owns(part) {
		return nil, fmt.Errorf("series %q: partition %d is not served by this instance: %w", id, part, ErrNotFound)
	}
	select {
	case p.explain.slots <- struct{}{}:
		defer func() { <-p.explain.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	x, spec, err := g.prepare(ctx, id)
	switch {
	case errors.Is(err, errTaskStopped):
		return nil, fmt.Errorf("series %q: partition %d is not served by this instance: %w", id, part, ErrNotFound)
	case errors.Is(err, pipeline.ErrUnknownSeries), errors.Is(err, model.ErrNoWindow):
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	case err != nil:
		return nil, err
	}
	exp, err := x.Explain(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	resp := &ExplainResponse{Series: id, Partition: part, Origin: spec.Start(exp.Origin), Model: exp.Model,
		Learner: exp.Learner, LearnerWeight: exp.Weight, MinScores: exp.MinScores}
	if a := exp.Attribution; a != nil {
		resp.Attribution = &AttributionJSON{Buckets: a.Buckets, Steps: a.Steps, Forecast: a.Forecast,
			Baseline: a.Baseline, Residual: a.Residual, Groups: make(map[string]float64, len(a.Groups))}
		for g, v := range a.Groups {
			resp.Attribution.Groups[model.Group(g).String()] = v
		}
	}
	for _, c := range exp.Mix {
		mc := MixCandidateJSON{Model: c.Model, Weight: c.Weight, Quantiles: c.Quantiles, Scores: c.Scores, Eligible: c.Eligible}
		if !math.IsNaN(c.Error) {
			mc.Error = &c.Error
		}
		resp.Mix = append(resp.Mix, mc)
	}
	return resp, nil
}

// serveExplain serves GET /v1/series/{store}/{sku}/explain?steps=&buckets=:
// 404 for a series this instance does not serve (as GET
// /v1/series/{store}/{sku}) or that has no closed bucket, 409 when the
// published model has no learner, 400 for bad parameters.
func (p *Processor) serveExplain(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("store") + "/" + r.PathValue("sku")
	var cfg model.ExplainConfig
	for _, q := range []struct {
		name string
		dst  *int
	}{{"steps", &cfg.Steps}, {"buckets", &cfg.Buckets}} {
		v := r.URL.Query().Get(q.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			p.m.explainErrs.WithLabelValues("bad_request").Inc()
			http.Error(w, fmt.Sprintf("%s=%q is not a positive integer", q.name, v), http.StatusBadRequest)
			return
		}
		*q.dst = n
	}
	resp, err := p.Explain(r.Context(), id, cfg)
	if err != nil {
		status, reason := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, ErrNotFound):
			status, reason = http.StatusNotFound, "not_found"
		case errors.Is(err, ErrNoLearner):
			status, reason = http.StatusConflict, "no_learner"
		case errors.Is(err, errBadRequest):
			status, reason = http.StatusBadRequest, "bad_request"
		case r.Context().Err() != nil:
			status, reason = http.StatusServiceUnavailable, "canceled"
		}
		p.m.explainErrs.WithLabelValues(reason).Inc()
		if status == http.StatusInternalServerError {
			p.cfg.Logger.Error("explaining series", "series", id, "err", err)
			http.Error(w, "internal error", status)
			return
		}
		http.Error(w, err.Error(), status)
		return
	}
	p.m.explanations.Inc()
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		p.cfg.Logger.Debug("writing explanation response", "err", err)
	}
}
