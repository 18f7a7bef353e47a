package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

var _ console.Backend = (*consoleBackend)(nil)

func newConsoleBackend(proc *stream.Processor, db *state.DB, g prometheus.Gatherer, instance string) *consoleBackend {
	cfg := proc.Config()
	return &consoleBackend{proc: proc, db: db, gatherer: g, instance: instance,
		parts: &partitionCount{conn: cfg.Connection, topic: cfg.InputTopic}}
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
				return nil, b.notOwned(id, p)
			}
		}
		return nil, fmt.Errorf("series %q: %w", id, console.ErrNotFound)
	}
	if !b.proc.Owns(part) {
		return nil, b.notOwned(id, part)
	}
	resp, err := b.proc.Series(id)
	if err != nil {
		if !b.proc.Owns(part) { // revoked meanwhile
			return nil, b.notOwned(id, part)
		}
		return nil, fmt.Errorf("reading series %q: %w", id, err)
	}
	s, err := consoleSeries(store, sku, resp)
	if err != nil || !b.proc.Config().Decisions.On {
		return s, err
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

func (b *consoleBackend) notOwned(id string, part int32) error {
	owned := b.proc.Partitions()
	slices.Sort(owned)
	return &console.NotOwnedError{Series: id, Partition: part, Owned: owned}
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
