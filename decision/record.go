package decision

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// TrendsRecord is the value of a record on the trends topic, keyed by
// store: one partition's top series per class in one store at one close.
// schema/trends.schema.json describes the document. A store's series
// spread over the input partitions, so each close gives one record per
// partition holding series of the store; a consumer merges the records of
// one origin (see Merge), as the HTTP API does across an instance's
// partitions.
type TrendsRecord struct {
	// Store is the store.
	Store string
	// Partition is the input partition the series belong to.
	Partition int32
	// Bucket is the bucket width, "1h", "1d" or "1w".
	Bucket string
	// Origin is the start of the closed bucket; GeneratedAt the wall-clock
	// time of the close.
	Origin, GeneratedAt time.Time
	// Window is TrendConfig.Window.
	Window int
	// Top holds the ranked series of each class, best first, in the order
	// of Classes.
	Top [classes][]Ranked
}

// AppendJSON appends the record's JSON to dst. Numbers are rounded to four
// decimals. It does not allocate beyond growing dst.
func (rec *TrendsRecord) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"store":`...)
	dst = strconv.AppendQuote(dst, rec.Store)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(rec.Partition), 10)
	dst = appendHead(dst, rec.Bucket, rec.Origin, rec.GeneratedAt)
	dst = append(dst, `,"window":`...)
	dst = strconv.AppendInt(dst, int64(rec.Window), 10)
	dst = append(dst, `,"classes":{`...)
	for i, c := range Classes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, c.String()...)
		dst = append(dst, `":[`...)
		for j := range rec.Top[i] {
			if j > 0 {
				dst = append(dst, ',')
			}
			e := &rec.Top[i][j]
			_, sku, _ := strings.Cut(e.Series, "/")
			dst = append(dst, `{"series":`...)
			dst = strconv.AppendQuote(dst, e.Series)
			dst = append(dst, `,"sku":`...)
			dst = strconv.AppendQuote(dst, sku)
			dst = appendNumber(dst, "score", e.Trend.Score)
			dst = appendNumber(dst, "last", e.Trend.Last)
			dst = appendNumber(dst, "reference", e.Trend.Reference)
			dst = appendNumber(dst, "next", e.Trend.Next)
			dst = append(dst, `,"change_pct":`...)
			if ch := e.Trend.Change(); math.IsNaN(ch) {
				dst = append(dst, "null"...)
			} else {
				dst = appendRounded(dst, 100*ch)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}

// PlanRecord is the value of a record on the replenishment topic, keyed
// by series id: a series' plan at one close. schema/replenishment.schema.json
// describes the document.
type PlanRecord struct {
	// Series is the series id, "STORE/SKU".
	Series string
	// Bucket is the bucket width, "1h", "1d" or "1w".
	Bucket string
	// Origin is the start of the closed bucket; GeneratedAt the wall-clock
	// time of the close.
	Origin, GeneratedAt time.Time
	// Model names the forecaster whose forecast the plan is made from.
	Model string
	// Method is the Replenisher's method and Levels its cycle demand
	// quantile levels.
	Method Method
	Levels []float64
	// Policy is the series' policy, defaults applied.
	Policy Policy
	// Stock is the series' stock position, nil when unknown.
	Stock *Stock
	// Plan is the plan.
	Plan *Plan
}

// AppendJSON appends the record's JSON to dst. Numbers are rounded to four
// decimals. It does not allocate beyond growing dst.
func (rec *PlanRecord) AppendJSON(dst []byte) []byte {
	store, sku, _ := strings.Cut(rec.Series, "/")
	p := rec.Plan
	dst = append(dst, `{"series":`...)
	dst = strconv.AppendQuote(dst, rec.Series)
	dst = append(dst, `,"store":`...)
	dst = strconv.AppendQuote(dst, store)
	dst = append(dst, `,"sku":`...)
	dst = strconv.AppendQuote(dst, sku)
	dst = appendHead(dst, rec.Bucket, rec.Origin, rec.GeneratedAt)
	dst = append(dst, `,"model":`...)
	dst = strconv.AppendQuote(dst, rec.Model)
	dst = append(dst, `,"method":"`...)
	dst = append(dst, rec.Method.String()...)
	dst = append(dst, `","calibrated":`...)
	dst = strconv.AppendBool(dst, p.Calibrated)
	dst = append(dst, `,"policy":{"lead_time":`...)
	dst = strconv.AppendInt(dst, int64(rec.Policy.LeadTime), 10)
	dst = append(dst, `,"review_period":`...)
	dst = strconv.AppendInt(dst, int64(rec.Policy.ReviewPeriod), 10)
	dst = appendNumber(dst, "service_level", rec.Policy.ServiceLevel)
	dst = appendNumber(dst, "pack_size", rec.Policy.PackSize)
	dst = append(dst, `},"cycle_demand":{"buckets":`...)
	dst = strconv.AppendInt(dst, int64(p.Cycle), 10)
	dst = appendNumber(dst, "mean", p.Mean)
	dst = append(dst, `,"quantiles":{`...)
	for i, q := range p.Quantiles {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendFloat(dst, rec.Levels[i], 'g', -1, 64)
		dst = append(dst, `":`...)
		dst = appendRounded(dst, q)
	}
	dst = append(dst, `}},"lead_time_demand":{"buckets":`...)
	dst = strconv.AppendInt(dst, int64(rec.Policy.LeadTime), 10)
	dst = appendNumber(dst, "mean", p.LeadMean)
	dst = append(dst, '}')
	dst = appendNumber(dst, "reorder_point", p.ReorderPoint)
	dst = appendNumber(dst, "safety_stock", p.SafetyStock)
	dst = appendNumber(dst, "order_up_to", p.OrderUpTo)
	dst = append(dst, `,"stock":`...)
	if rec.Stock == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"on_hand":`...)
		dst = appendRounded(dst, rec.Stock.OnHand)
		dst = appendNumber(dst, "on_order", rec.Stock.OnOrder)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"order_qty":`...)
	if p.HasOrder {
		dst = appendRounded(dst, p.Order)
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}')
}

// appendHead appends the fields every record starts with after its key
// fields: bucket, origin and generated_at.
func appendHead(dst []byte, bucket string, origin, generated time.Time) []byte {
	dst = append(dst, `,"bucket":`...)
	dst = strconv.AppendQuote(dst, bucket)
	dst = append(dst, `,"origin":"`...)
	dst = origin.AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","generated_at":"`...)
	dst = generated.AppendFormat(dst, time.RFC3339)
	return append(dst, '"')
}

// appendNumber appends `,"name":v`, v rounded.
func appendNumber(dst []byte, name string, v float64) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, name...)
	dst = append(dst, `":`...)
	return appendRounded(dst, v)
}

// appendRounded appends v rounded to four decimals; -0 is written as 0.
func appendRounded(dst []byte, v float64) []byte {
	return strconv.AppendFloat(dst, math.Round(v*1e4)/1e4+0, 'f', -1, 64)
}
