package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Backend is what the console reads from the processor it runs beside.
// The console calls it from HTTP handlers and from its sampler at once, so
// implementations must be safe for concurrent use. Results belong to the
// console once returned: the backend must not modify them afterwards.
type Backend interface {
	// Overview returns the instance's counters since it started and the
	// state of the partitions it serves now.
	Overview(ctx context.Context) (*Overview, error)
	// Series returns the series store/sku. For a series this instance does
	// not know it returns an error wrapping ErrNotFound, for one of a
	// partition another instance serves a *NotOwnedError.
	Series(ctx context.Context, store, sku string) (*Series, error)
	// Search returns, in key order, up to limit series whose store is
	// store (any store when empty) and whose SKU starts with skuPrefix,
	// and whether more match.
	Search(ctx context.Context, store, skuPrefix string, limit int) (refs []SeriesRef, more bool, err error)
}

// ErrNotFound is wrapped by the errors of Backend.Series for a series the
// instance holds no state for.
var ErrNotFound = errors.New("console: series not found")

// NotOwnedError is the error of Backend.Series for a series of a partition
// another instance serves.
type NotOwnedError struct {
	// Series is the series id, "STORE/SKU".
	Series string
	// Partition is the series' partition.
	Partition int32
	// Owned lists the partitions this instance serves.
	Owned []int32
	// Owner is the base URL of the console that serves the partition,
	// such as "https://host-2:8080", when the backend knows it; the page
	// then links to the series there.
	Owner string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("console: series %q is in partition %d, which another instance serves (this one serves %s)",
		e.Series, e.Partition, partitionList(e.Owned))
}

// partitionList formats partitions for people: "0, 2 and 3", or "none".
func partitionList(parts []int32) string {
	if len(parts) == 0 {
		return "none"
	}
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = strconv.Itoa(int(p))
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// Overview is an instance's state at one moment.
type Overview struct {
	// Instance names the instance for people, such as its HTTP address.
	Instance string
	// Group is the consumer group the instance belongs to.
	Group string
	// Ready is what /readyz reports: the instance is in a group generation
	// and has loaded every assigned partition.
	Ready bool
	// Partitions is the input topic's partition count, 0 when unknown.
	Partitions int
	// Owned holds the partitions this instance serves, in order.
	Owned []PartitionStatus
	// Consumed counts the input records consumed since the process
	// started. The console derives events per second from successive
	// values.
	Consumed float64
	// Forecasts counts the forecasts published since the process started.
	Forecasts float64
	// Series counts the series held in memory by the owned partitions.
	Series float64
	// DeadLetters counts the records sent to the dead-letter topic since
	// the process started, by reason.
	DeadLetters map[string]float64
	// Trending is optional: nil (or empty lists) hides the section.
	Trending *Trending
	// Peers holds the base URLs of the consoles of the group's other
	// instances, when the backend knows them; the overview links them.
	Peers []string
}

// PartitionStatus is one partition an instance serves.
type PartitionStatus struct {
	// Partition is the partition number.
	Partition int32
	// Watermark is the partition's watermark, zero before its first event.
	Watermark time.Time
	// Lag counts the records between the last fetched offset and the
	// partition's end.
	Lag float64
	// Series counts the partition's series in memory.
	Series float64
}

// Trending lists the series of each trend class (see package decision),
// best first. Each list is optional and shown in the order given.
type Trending struct {
	// Rising and Falling hold established series that sell materially
	// more or less than before.
	Rising, Falling []TrendItem
	// Emerging holds series that started selling recently and are
	// ramping up; Fading holds series whose sales are dying out.
	Emerging, Fading []TrendItem
}

// empty reports whether t has nothing to show.
func (t *Trending) empty() bool {
	return t == nil || len(t.Rising)+len(t.Falling)+len(t.Emerging)+len(t.Fading) == 0
}

// TrendItem is one series in a Trending list.
type TrendItem struct {
	Store, SKU string
	// ChangePct is the change from Last to Next in percent; nil when Last
	// is 0.
	ChangePct *float64
	// Last and Next are the totals compared, shown as "Last → Next": the
	// earlier and the later one (for the trend classes, the reference
	// window's and the last window's).
	Last, Next float64
}

// SeriesRef names a series found by Backend.Search.
type SeriesRef struct {
	Store, SKU string
	// Partition is the series' partition.
	Partition int32
	// Owned reports whether this instance serves the partition.
	Owned bool
}

// Series is one series' state. The fields after Forecast are optional:
// the console shows their sections only when they are set.
type Series struct {
	Store, SKU string
	// Partition is the series' partition.
	Partition int32
	// Bucket is the bucket width, such as "1d".
	Bucket string
	// Closed holds the closed buckets kept, oldest first.
	Closed []Bucket
	// Open holds the buckets still accepting events, oldest first.
	Open []Bucket
	// Forecast is the latest published forecast, nil before the series'
	// first bucket closed.
	Forecast *Forecast

	// Models holds other models' forecasts at the same origin, for
	// comparison with the published one. Optional.
	Models []ModelForecast
	// Accuracy holds each model's recent accuracy on the series.
	// Optional.
	Accuracy []ModelAccuracy
	// Explanation says why the forecast is what it is. Optional.
	Explanation *Explanation
	// Replenishment is an order recommendation from the forecast.
	// Optional.
	Replenishment *Replenishment
}

// Bucket is one event-time bucket of a series.
type Bucket struct {
	// Start is the bucket's start.
	Start time.Time
	// Qty is the quantity sold in it.
	Qty float64
	// Events counts the events of an open bucket (0 for closed ones).
	Events int
}

// Forecast is a published forecast.
type Forecast struct {
	// Origin is the start of the last closed bucket it is based on.
	Origin time.Time
	// GeneratedAt is the wall-clock time it was made.
	GeneratedAt time.Time
	// Model names the forecaster and ModelVersion its version or, for
	// auto, the mix published.
	Model, ModelVersion string
	// Steps holds one entry per bucket of the horizon, in time order.
	Steps []Step
	// Trend compares the next buckets' forecast with the last actuals.
	Trend Trend
}

// Step is one bucket of a forecast: its mean and quantiles,
// 0 <= P10 <= P50 <= P90.
type Step struct {
	Start               time.Time
	Mean, P10, P50, P90 float64
}

// Trend summarizes a forecast against recent actuals.
type Trend struct {
	// Direction is "up", "down" or "flat".
	Direction string
	// ChangePct is the change in percent, nil when undefined.
	ChangePct *float64
}

// ModelForecast is one model's forecast of a series, made at the
// published forecast's origin.
type ModelForecast struct {
	// Model names the forecaster.
	Model string
	// Steps holds its forecast at some or all steps of the horizon, in
	// time order: a backend may keep only a few (the live processor keeps
	// those its ensemble scores at).
	Steps []ModelStep
	// Total is its forecast total over the next TotalBuckets buckets;
	// TotalBuckets 0 hides it.
	Total        float64
	TotalBuckets int
}

// ModelStep is one step of a model's forecast.
type ModelStep struct {
	// Start is the step's bucket start and Mean its mean.
	Start time.Time
	Mean  float64
	// P10 and P90 bound its 10% to 90% band when Band is set.
	P10, P90 float64
	Band     bool
}

// ModelAccuracy is one model's recent accuracy on a series. Errors are
// in units of the series' sales per bucket; NaN marks one not known yet.
type ModelAccuracy struct {
	// Model names the forecaster.
	Model string
	// RMSE is its recent root mean squared error over the steps ahead
	// scored, and NextRMSE the one of its next-bucket forecasts.
	RMSE, NextRMSE float64
	// Pinball is its recent pinball loss of the next bucket's quantiles,
	// summed over the quantile levels.
	Pinball float64
	// Scored counts the forecasts scored (at the step ahead scored
	// least).
	Scored int
	// Weight is its weight in the published mean, negative when unknown.
	Weight float64
	// Quantiles reports whether the published quantiles are this
	// model's.
	Quantiles bool
}

// Explanation says in words and factors why a forecast is what it is.
type Explanation struct {
	// Summary is one or two plain sentences.
	Summary string
	// Factors are the contributions behind it, largest first.
	Factors []Factor
}

// Factor is one contribution to a forecast.
type Factor struct {
	// Name is what contributes, such as "weekly seasonality".
	Name string
	// Effect is its effect on the next buckets' forecast, in units.
	Effect float64
}

// Replenishment recommends an order from a forecast.
type Replenishment struct {
	// LeadTime is the number of buckets until an order placed now
	// arrives.
	LeadTime int
	// ServiceLevel is the probability of not running out that the order
	// targets, such as 0.9.
	ServiceLevel float64
	// Demand is the forecast mean demand over the lead time and the review
	// period.
	Demand float64
	// SafetyStock is the stock held above Demand for ServiceLevel.
	SafetyStock float64
	// ReorderPoint and OrderUpTo are the plan's levels: the stock
	// position below which the lead time may run out, and the one an
	// order restores. Zero hides them.
	ReorderPoint, OrderUpTo float64
	// OnHand is the stock on hand, nil when unknown.
	OnHand *float64
	// OrderQty is the recommended order quantity, shown only with OnHand.
	OrderQty float64
}
