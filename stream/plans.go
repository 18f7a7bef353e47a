package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// Promotions on the Kafka side: the processor reads the plans topic into
// a table the engines apply to the forecasts they publish (see
// pipeline.PlanTable), and the HTTP API answers what-if questions from
// the promotion lifts the partitions committed.

// newPlanTable returns the plans table when promotions are on and the
// plans topic is set, and makes it the engines' plans; nil otherwise.
func newPlanTable(cfg *Config) (*pipeline.PlanTable, error) {
	if !cfg.Promotions.On || cfg.PlansTopic == "" {
		return nil, nil
	}
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		return nil, err
	}
	t := pipeline.NewPlanTable(spec)
	cfg.Promotions.Plans = t
	return t, nil
}

// validatePlans checks that the plans topic, when promotions use it,
// differs from every other topic.
func (c *Config) validatePlans() error {
	if !c.Promotions.On || c.PlansTopic == "" {
		return nil
	}
	others := []string{c.InputTopic, c.OutputTopic, c.DLQTopic, c.changelogTopic()}
	if c.Decisions.On {
		others = append(others, c.TrendsTopic, c.ReplenishmentTopic, c.CatalogTopic, c.InventoryTopic)
	}
	for _, t := range others {
		if t == c.PlansTopic {
			return fmt.Errorf("stream: PlansTopic %q is also used as another topic", t)
		}
	}
	return nil
}

// ensurePlansTopic creates the plans topic, compacted, with as many
// partitions as the input, if it is missing.
func (p *Processor) ensurePlansTopic(ctx context.Context) error {
	return p.ensureSideTopics(ctx, "plans", []string{p.cfg.PlansTopic}, nil)
}

// WhatIfResponse is the body of POST /v1/series/{store}/{sku}/whatif.
type WhatIfResponse struct {
	// Series is the series id and Partition the input partition holding
	// it.
	Series    string `json:"series"`
	Partition int32  `json:"partition"`
	// Origin is the origin of the latest published forecast the what-if
	// starts from, and Model its forecaster.
	Origin time.Time `json:"origin"`
	Model  string    `json:"model"`
	// Lift is the series' estimated promotion lift, shrunk to its
	// partition's PooledLift; Promotions is the number of promotion
	// buckets, weighted by age, behind the series' own estimate.
	Lift       float64 `json:"lift"`
	PooledLift float64 `json:"pooled_lift"`
	Promotions float64 `json:"promotions"`
	// PublishedUnderPlan says whether the latest forecast was published
	// under a plan from the plans topic, which the what-if takes out
	// before it applies the plan asked for.
	PublishedUnderPlan bool `json:"published_under_plan"`
	// Steps holds the horizon's buckets, and TotalUplift the sum of their
	// uplifts.
	Steps       []WhatIfStep `json:"steps"`
	TotalUplift float64      `json:"total_uplift"`
}

// WhatIfStep is one bucket of a what-if: the forecast without any
// promotion, the forecast under the plan asked for and the difference
// of their means.
type WhatIfStep struct {
	Start    time.Time    `json:"start"`
	Promo    bool         `json:"promo"`
	Baseline StepForecast `json:"baseline"`
	Planned  StepForecast `json:"planned"`
	Uplift   float64      `json:"uplift"`
}

// StepForecast is a step's mean and quantiles.
type StepForecast struct {
	Mean float64 `json:"mean"`
	P10  float64 `json:"p10"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
}

// forecastJSON is the part of a forecast record the what-if reads back.
type forecastJSON struct {
	Origin time.Time `json:"origin"`
	Model  string    `json:"model"`
	Steps  []struct {
		Start time.Time `json:"start"`
		StepForecast
	} `json:"steps"`
}

// round4 rounds v to 4 decimals, as forecast records are.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// maxWhatIfBody bounds the body of a what-if request.
const maxWhatIfBody = 64 << 10

func (p *Processor) serveWhatIf(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("store") + "/" + r.PathValue("sku")
	code := http.StatusOK
	defer func() { p.m.whatifs.WithLabelValues(strconv.Itoa(code)).Inc() }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWhatIfBody))
	var resp *WhatIfResponse
	if err == nil {
		resp, err = p.WhatIf(id, body)
	}
	var inv *pipeline.InvalidError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &inv):
		code = http.StatusBadRequest
		http.Error(w, fmt.Sprintf("bad plan: %s: %s", inv.Reason, inv.Detail), code)
		return
	case errors.As(err, &tooBig):
		code = http.StatusRequestEntityTooLarge
		http.Error(w, err.Error(), code)
		return
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
		http.Error(w, err.Error(), code)
		return
	case errors.Is(err, pipeline.ErrCloseInFlight):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
		http.Error(w, err.Error(), code)
		return
	case err != nil:
		code = http.StatusInternalServerError
		p.cfg.Logger.Error("serving a what-if", "series", id, "err", err)
		http.Error(w, "internal error", code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		p.cfg.Logger.Debug("writing what-if response", "err", err)
	}
}

// WhatIf returns the forecast of series id ("STORE/SKU") under the plan
// (a plans record, schema/plans.schema.json) next to its forecast
// without promotions, from its latest published forecast and the
// promotion lifts its partition committed, read in one snapshot of the
// store. It writes nothing. A bad plan is an *pipeline.InvalidError; a
// series this instance does not serve, or without a forecast or lift yet,
// wraps ErrNotFound.
func (p *Processor) WhatIf(id string, plan []byte) (*WhatIfResponse, error) {
	spec, err := window.NewSpec(p.cfg.Window.Width, p.cfg.Window.Location)
	if err != nil {
		return nil, err
	}
	promo, err := pipeline.DecodePlan([]byte(id), plan, spec)
	if err != nil {
		return nil, err
	}
	var resp *WhatIfResponse
	err = p.db.View(func(st *state.Snapshot) error {
		part, found, err := pipeline.SeriesPartition(st, []byte(id))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("series %q: %w", id, ErrNotFound)
		}
		if !p.Owns(part) {
			return fmt.Errorf("series %q: partition %d is not served by this instance: %w", id, part, ErrNotFound)
		}
		var rec forecastJSON
		found, err = pipeline.LatestForecast(st, part, []byte(id), func(v []byte) error { return json.Unmarshal(v, &rec) })
		if err != nil {
			return fmt.Errorf("stream: latest forecast of series %q: %w", id, err)
		}
		if !found || len(rec.Steps) == 0 {
			return fmt.Errorf("series %q has no forecast yet: %w", id, ErrNotFound)
		}
		f := &model.Forecast{Levels: []float64{0.1, 0.5, 0.9}}
		for _, s := range rec.Steps {
			f.Mean = append(f.Mean, s.Mean)
			f.Q = append(f.Q, s.P10, s.P50, s.P90)
		}
		origin := spec.Index(rec.Origin)
		steps := make([]bool, len(f.Mean))
		pipeline.FillPlan(steps, origin, promo)
		wi, found, err := pipeline.PromoWhatIf(st, part, id, p.cfg.Promotions, spec, origin, f, steps)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("series %q has no promotion lift yet: %w", id, ErrNotFound)
		}
		resp = &WhatIfResponse{Series: id, Partition: part, Origin: rec.Origin, Model: rec.Model,
			Lift: round4(wi.Lift.Lift), PooledLift: round4(wi.Pooled), Promotions: round4(wi.Promotions),
			PublishedUnderPlan: len(wi.Applied) > 0, TotalUplift: round4(wi.TotalUplift)}
		step := func(g *model.Forecast, h int) StepForecast {
			return StepForecast{Mean: round4(g.Mean[h]), P10: round4(g.Q[3*h]), P50: round4(g.Q[3*h+1]), P90: round4(g.Q[3*h+2])}
		}
		for h, s := range rec.Steps {
			resp.Steps = append(resp.Steps, WhatIfStep{Start: s.Start, Promo: steps[h],
				Baseline: step(wi.Baseline, h), Planned: step(wi.Planned, h), Uplift: round4(wi.Uplift[h])})
		}
		return nil
	})
	return resp, err
}
