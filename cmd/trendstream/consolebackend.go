package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

// consoleBackend is the console's view of a processor: its metrics, its
// owned partitions, and its series through the state store's index. It
// reads only exported processor methods and the metrics it publishes, so
// it can move next to the processor unchanged.
type consoleBackend struct {
	proc     *stream.Processor
	db       *state.DB
	gatherer prometheus.Gatherer
	instance string
	parts    *partitionCount
	// inspect reads auto's candidates per series; nil when the processor
	// publishes another forecaster, which keeps no per-series scores.
	inspect *pipeline.Inspector
	// peers finds the instance serving a series this one does not.
	peers *peerFinder
	// explain explains the forecasts series pages show.
	explain *explanations
}

var _ console.Backend = (*consoleBackend)(nil)

func newConsoleBackend(proc *stream.Processor, db *state.DB, g prometheus.Gatherer, instance string, peers *peerFinder) (*consoleBackend, error) {
	cfg := proc.Config()
	b := &consoleBackend{proc: proc, db: db, gatherer: g, instance: instance,
		parts: &partitionCount{conn: cfg.Connection, topic: cfg.InputTopic}, peers: peers, explain: newExplanations(proc)}
	var err error
	b.inspect, err = pipeline.NewInspector(cfg.Config)
	if errors.Is(err, pipeline.ErrNoEnsemble) {
		b.inspect, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console: reading the models of series: %w", err)
	}
	return b, nil
}

// Overview reads the processor's metrics.
func (b *consoleBackend) Overview(ctx context.Context) (*console.Overview, error) {
	mfs, err := b.gatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	ov := &console.Overview{
		Instance:    b.instance,
		Group:       b.proc.Config().Group,
		Ready:       b.proc.Ready(),
		Partitions:  b.parts.get(ctx),
		DeadLetters: map[string]float64{},
	}
	if b.peers != nil {
		ov.Peers = b.peers.peers
	}
	owned := b.proc.Partitions()
	slices.Sort(owned)
	status := make(map[int32]*console.PartitionStatus, len(owned))
	ov.Owned = make([]console.PartitionStatus, len(owned))
	for i, p := range owned {
		ov.Owned[i].Partition = p
		status[p] = &ov.Owned[i]
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			part := partitionOf(status, m)
			switch mf.GetName() {
			case "trendstream_records_consumed_total":
				ov.Consumed = v
			case "trendstream_forecasts_published_total":
				ov.Forecasts = v
			case "trendstream_dlq_records_total":
				ov.DeadLetters[label(m, "reason")] = v
			case "trendstream_series":
				if part != nil {
					part.Series = v
					ov.Series += v
				}
			case "trendstream_consumer_lag_records":
				if part != nil {
					part.Lag = v
				}
			case "trendstream_watermark_seconds":
				if part != nil && v > 0 {
					part.Watermark = time.Unix(0, int64(v*1e9)).UTC()
				}
			}
		}
	}
	if ov.Trending, err = b.consoleTrending(); err != nil {
		return nil, fmt.Errorf("reading the trending series: %w", err)
	}
	return ov, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// partitionOf returns the status of the owned partition a metric is
// labelled with, or nil.
func partitionOf(status map[int32]*console.PartitionStatus, m *dto.Metric) *console.PartitionStatus {
	p, err := strconv.ParseInt(label(m, "partition"), 10, 32)
	if err != nil {
		return nil
	}
	return status[int32(p)]
}

// Series reads a series' committed state. The partition comes from the
// state store's index, or for a series never seen here from the
// partitioner producers use, so that a series of another instance's
// partition is reported as such rather than as unknown.
func (b *consoleBackend) Series(ctx context.Context, store, sku string) (*console.Series, error) {
	id := store + "/" + sku
	part, known, err := b.indexed(id)
	if err != nil {
		return nil, err
	}
	if !known {
		if n := b.parts.get(ctx); n > 0 {
			if p := int32(backtest.Partition([]byte(id), n)); !b.proc.Owns(p) {
				return nil, b.notOwned(ctx, store, sku, p)
			}
		}
		return nil, fmt.Errorf("series %q: %w", id, console.ErrNotFound)
	}
	if !b.proc.Owns(part) {
		return nil, b.notOwned(ctx, store, sku, part)
	}
	resp, err := b.proc.Series(id)
	if err != nil {
		if !b.proc.Owns(part) { // revoked meanwhile
			return nil, b.notOwned(ctx, store, sku, part)
		}
		return nil, fmt.Errorf("reading series %q: %w", id, err)
	}
	s, err := consoleSeries(store, sku, resp)
	if err != nil {
		return nil, err
	}
	if err := b.consoleModels(s, part, id); err != nil {
		return nil, err
	}
	if err := b.explain.fill(ctx, s, id); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The page shows the rest; the log says why it has no explanation.
		b.proc.Config().Logger.Warn("console: no explanation for a series page", "series", id, "err", err)
	}
	if !b.proc.Config().Decisions.On {
		return s, nil
	}
	plan, err := b.proc.Replenishment(id)
	switch {
	case err == nil:
		s.Replenishment, err = consoleReplenishment(plan)
		return s, err
	case errors.Is(err, stream.ErrNotFound):
		return s, nil // no plan yet
	}
	return nil, fmt.Errorf("reading the replenishment of %q: %w", id, err)
}

// consoleModels fills a series' Models and Accuracy from what auto keeps
// about its candidates in the committed state: each candidate's forecast
// at the steps ahead auto scores (with the next bucket's band) and its
// online errors. The weights and the band's source come from the
// published forecast's mix. Both are shown only when auto's state is of
// the published forecast's origin (a commit between the two reads can
// move it on), so that errors and weights are of the same close.
func (b *consoleBackend) consoleModels(s *console.Series, part int32, id string) error {
	if b.inspect == nil {
		return nil
	}
	var sc *pipeline.SeriesCandidates
	err := b.db.View(func(st *state.Snapshot) (err error) {
		sc, _, err = b.inspect.Candidates(st, part, []byte(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("reading the models of %q: %w", id, err)
	}
	if sc == nil {
		return nil
	}
	var weights map[string]float64
	var bandFrom string
	if s.Forecast != nil && s.Forecast.Model == pipeline.NameAuto {
		weights, bandFrom = parseMix(s.Forecast.ModelVersion)
	}
	lo, hi := slices.Index(sc.Levels, 0.1), slices.Index(sc.Levels, 0.9)
	next := slices.Index(sc.Horizons, 1)
	if s.Forecast == nil || sc.Origin.IsZero() || !sc.Origin.Equal(s.Forecast.Origin) {
		return nil // a close committed between the two reads: the next update shows them
	}
	for _, c := range sc.Candidates {
		m := console.ModelForecast{Model: c.Name, Total: c.WindowTotal, TotalBuckets: sc.Window}
		for k, h := range sc.Horizons {
			st := console.ModelStep{Start: sc.Starts[k], Mean: c.Means[k]}
			if h == 1 && lo >= 0 && hi >= 0 && len(c.Quantiles) == len(sc.Levels) {
				st.P10, st.P90, st.Band = c.Quantiles[lo], c.Quantiles[hi], true
			}
			m.Steps = append(m.Steps, st)
		}
		s.Models = append(s.Models, m)
		a := console.ModelAccuracy{Model: c.Name, RMSE: c.RMSE, NextRMSE: math.NaN(), Pinball: c.Pinball,
			Scored: c.Scores, Weight: -1, Quantiles: c.Name == bandFrom}
		if next >= 0 {
			a.NextRMSE = c.HorizonRMSE[next]
		}
		if weights != nil {
			a.Weight = weights[c.Name] // a part below 0.5% is left out of the mix: 0
		}
		s.Accuracy = append(s.Accuracy, a)
	}
	return nil
}

// parseMix reads the weights and the quantiles' source from auto's
// model_version, "mean ets 0.62 tsb 0.38; quantiles ets" (see
// model.Mix.Describe); nil weights when it is not one.
func parseMix(version string) (weights map[string]float64, quantiles string) {
	mean, q, ok := strings.Cut(version, "; quantiles ")
	f := strings.Fields(mean)
	if !ok || len(f) == 0 || f[0] != "mean" || len(f)%2 != 1 {
		return nil, ""
	}
	weights = map[string]float64{}
	for i := 1; i < len(f); i += 2 {
		w, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			return nil, ""
		}
		weights[f[i]] = w
	}
	return weights, q
}

// consoleReplenishment turns a replenishment plan record into the
// console's section.
func consoleReplenishment(record []byte) (*console.Replenishment, error) {
	var p struct {
		Policy struct {
			LeadTime     int     `json:"lead_time"`
			ServiceLevel float64 `json:"service_level"`
		} `json:"policy"`
		Cycle struct {
			Mean float64 `json:"mean"`
		} `json:"cycle_demand"`
		ReorderPoint float64 `json:"reorder_point"`
		SafetyStock  float64 `json:"safety_stock"`
		OrderUpTo    float64 `json:"order_up_to"`
		Stock        *struct {
			OnHand float64 `json:"on_hand"`
		} `json:"stock"`
		OrderQty *float64 `json:"order_qty"`
	}
	if err := json.Unmarshal(record, &p); err != nil {
		return nil, fmt.Errorf("decoding a replenishment record: %w", err)
	}
	r := &console.Replenishment{LeadTime: p.Policy.LeadTime, ServiceLevel: p.Policy.ServiceLevel, Demand: p.Cycle.Mean,
		SafetyStock: p.SafetyStock, ReorderPoint: p.ReorderPoint, OrderUpTo: p.OrderUpTo}
	if p.Stock != nil && p.OrderQty != nil {
		r.OnHand, r.OrderQty = &p.Stock.OnHand, *p.OrderQty
	}
	return r, nil
}

// consoleTrending returns the top series of each class across the
// processor's partitions, nil when decisions are off or nothing trends.
func (b *consoleBackend) consoleTrending() (*console.Trending, error) {
	if !b.proc.Config().Decisions.On {
		return nil, nil
	}
	tr, err := b.proc.Trending("", nil, 5)
	if err != nil {
		return nil, err
	}
	items := func(class string) []console.TrendItem {
		var out []console.TrendItem
		for _, s := range tr.Classes[class] {
			out = append(out, console.TrendItem{Store: s.Store, SKU: s.SKU, ChangePct: s.ChangePct, Last: s.Reference, Next: s.Last})
		}
		return out
	}
	return &console.Trending{Rising: items("rising"), Falling: items("falling"), Emerging: items("emerging"), Fading: items("fading")}, nil
}

// notOwned returns the error for a series of a partition another
// instance serves, naming that instance when a peer says it has the
// series.
func (b *consoleBackend) notOwned(ctx context.Context, store, sku string, part int32) error {
	owned := b.proc.Partitions()
	slices.Sort(owned)
	return &console.NotOwnedError{Series: store + "/" + sku, Partition: part, Owned: owned, Owner: b.peers.owner(ctx, store, sku)}
}

// indexed looks a series' partition up in the state store's index.
func (b *consoleBackend) indexed(id string) (part int32, found bool, err error) {
	part, found, err = pipeline.SeriesPartition(b.db, []byte(id))
	if err != nil {
		return 0, false, fmt.Errorf("looking up series %q: %w", id, err)
	}
	return part, found, nil
}

// consoleSeries converts the API's series response for the console.
func consoleSeries(store, sku string, resp *stream.SeriesResponse) (*console.Series, error) {
	s := &console.Series{Store: store, SKU: sku, Partition: resp.Partition, Bucket: resp.Bucket}
	for _, b := range resp.Buckets {
		s.Closed = append(s.Closed, console.Bucket{Start: b.Start, Qty: b.Qty})
	}
	for _, b := range resp.Open {
		s.Open = append(s.Open, console.Bucket{Start: b.Start, Qty: b.Qty, Events: b.Events})
	}
	if len(resp.Forecast) == 0 || string(resp.Forecast) == "null" {
		return s, nil
	}
	var f pipeline.ForecastRecord
	if err := json.Unmarshal(resp.Forecast, &f); err != nil {
		return nil, fmt.Errorf("decoding the forecast of %q: %w", resp.Series, err)
	}
	s.Forecast = &console.Forecast{Origin: f.Origin, GeneratedAt: f.GeneratedAt, Model: f.Model, ModelVersion: f.ModelVersion,
		Trend: console.Trend{Direction: string(f.Trend.Direction), ChangePct: f.Trend.ChangePct}}
	for _, st := range f.Steps {
		s.Forecast.Steps = append(s.Forecast.Steps, console.Step{Start: st.Start, Mean: st.Mean, P10: st.P10, P50: st.P50, P90: st.P90})
	}
	return s, nil
}

// errEnough stops an index scan.
var errEnough = errors.New("enough")

// Search scans the state store's index: the keys of one store's series
// when store is given, else every key, stopping after limit+1 matches.
func (b *consoleBackend) Search(ctx context.Context, store, skuPrefix string, limit int) ([]console.SeriesRef, bool, error) {
	prefix := ""
	if store != "" {
		prefix = store + "/" + skuPrefix
	}
	var refs []console.SeriesRef
	more := false
	err := pipeline.ScanSeries(b.db, []byte(prefix), func(id []byte, part int32) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, sku, ok := strings.Cut(string(id), "/")
		if !ok || !strings.HasPrefix(sku, skuPrefix) {
			return nil
		}
		if len(refs) == limit {
			more = true
			return errEnough
		}
		refs = append(refs, console.SeriesRef{Store: st, SKU: sku, Partition: part, Owned: b.proc.Owns(part)})
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, false, fmt.Errorf("searching series: %w", err)
	}
	return refs, more, nil
}

// partitionCount caches the input topic's partition count from the
// brokers' metadata, looked up at most once a minute.
type partitionCount struct {
	conn  stream.Connection
	topic string

	mu   sync.Mutex
	n    int
	next time.Time
}

func (c *partitionCount) get(ctx context.Context) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Now().Before(c.next) {
		return c.n
	}
	c.next = time.Now().Add(10 * time.Second) // retry soon after a failure
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := &kafka.Dialer{Timeout: 2 * time.Second, TLS: c.conn.TLS, SASLMechanism: c.conn.SASL}
	for _, broker := range c.conn.Brokers {
		conn, err := d.DialContext(ctx, "tcp", broker)
		if err != nil {
			continue
		}
		parts, err := conn.ReadPartitions(c.topic)
		conn.Close()
		if err == nil && len(parts) > 0 {
			c.n, c.next = len(parts), time.Now().Add(time.Minute)
			break
		}
	}
	return c.n
}
