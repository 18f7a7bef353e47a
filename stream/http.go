package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/window"
)

// SeriesResponse is the body of GET /v1/series/{store}/{sku}.
type SeriesResponse struct {
	// Series is the series id, "STORE/SKU".
	Series string `json:"series"`
	// Partition is the input partition holding the series.
	Partition int32 `json:"partition"`
	// Bucket is the bucket width.
	Bucket string `json:"bucket"`
	// Buckets are the closed buckets held, oldest first.
	Buckets []BucketJSON `json:"buckets"`
	// Open are buckets still accepting events, oldest first.
	Open []BucketJSON `json:"open"`
	// Features are the series' incremental features.
	Features window.Features `json:"features"`
	// Forecast is the latest forecast record published for the series, or
	// null before its first bucket closed.
	Forecast json.RawMessage `json:"forecast"`
}

// BucketJSON is one bucket in a SeriesResponse.
type BucketJSON struct {
	// Start is the bucket's start.
	Start time.Time `json:"start"`
	// Qty is the quantity sold in the bucket.
	Qty float64 `json:"qty"`
	// Events counts the events of an open bucket.
	Events int `json:"events,omitempty"`
}

// Handler returns the processor's HTTP API: /healthz, /readyz, /metrics
// (from g, which may be nil), GET /v1/series/{store}/{sku}, GET
// /v1/series/{store}/{sku}/explain (see Explain) and, when
// decisions are on, GET /v1/series/{store}/{sku}/replenishment and
// GET /v1/trending?store=&class=&limit= (see Trending) and, when
// promotions are on, POST /v1/series/{store}/{sku}/whatif (see WhatIf).
func (p *Processor) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready: partitions are loading or the group is rebalancing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /v1/series/{store}/{sku}", p.serveSeries)
	mux.HandleFunc("GET /v1/series/{store}/{sku}/explain", p.serveExplain)
	if p.catalog != nil {
		mux.HandleFunc("GET /v1/series/{store}/{sku}/replenishment", p.serveReplenishment)
		mux.HandleFunc("GET /v1/trending", p.serveTrending)
	}
	if p.cfg.Promotions.On {
		mux.HandleFunc("POST /v1/series/{store}/{sku}/whatif", p.serveWhatIf)
	}
	return mux
}

// ErrNotFound is wrapped by the errors of Series and Replenishment for a
// series this instance does not serve or has nothing of.
var ErrNotFound = errors.New("not found")

func (p *Processor) serveSeries(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("store") + "/" + r.PathValue("sku")
	resp, err := p.Series(id)
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		p.cfg.Logger.Error("serving series", "series", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	if err := enc.Encode(resp); err != nil {
		p.cfg.Logger.Debug("writing series response", "err", err)
	}
}

// Series returns the committed state of series id ("STORE/SKU"), if a
// partition this instance currently owns holds it. It reads the index, the
// series and its latest forecast in one snapshot of the store, so a commit
// in between cannot make them disagree.
func (p *Processor) Series(id string) (*SeriesResponse, error) {
	var resp *SeriesResponse
	err := p.db.View(func(st *state.Snapshot) (err error) {
		resp, err = p.series(st, id)
		return err
	})
	return resp, err
}

func (p *Processor) series(st *state.Snapshot, id string) (*SeriesResponse, error) {
	part, found, err := pipeline.SeriesPartition(st, []byte(id))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("series %q: %w", id, ErrNotFound)
	}
	if !p.Owns(part) {
		return nil, fmt.Errorf("series %q: partition %d is not served by this instance: %w", id, part, ErrNotFound)
	}
	view, err := window.NewPartition(p.cfg.Window)
	if err != nil {
		return nil, err
	}
	s, found, err := pipeline.ReadSeries(st, part, view, []byte(id))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("series %q: %w", id, ErrNotFound)
	}
	resp := &SeriesResponse{
		Series:    id,
		Partition: part,
		Bucket:    p.cfg.Window.Width.String(),
		Buckets:   make([]BucketJSON, 0, s.Len()),
		Open:      []BucketJSON{},
		Features:  s.Features(),
		Forecast:  json.RawMessage("null"),
	}
	spec := view.Spec()
	first := s.Closed() - int64(s.Len()) + 1
	for i := range s.Len() {
		resp.Buckets = append(resp.Buckets, BucketJSON{Start: spec.Start(first + int64(i)), Qty: s.At(i).Qty})
	}
	for _, o := range s.Open(nil) {
		resp.Open = append(resp.Open, BucketJSON{Start: spec.Start(o.Index), Qty: o.Qty, Events: o.Events})
	}
	_, err = pipeline.LatestForecast(st, part, []byte(id), func(v []byte) error {
		resp.Forecast = append(json.RawMessage(nil), v...)
		return nil
	})
	return resp, err
}
