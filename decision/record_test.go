package decision_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/internal/schematest"
)

var (
	testOrigin = time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)
	testNow    = time.Date(2024, 5, 3, 0, 5, 1, 0, time.UTC)
)

func trendsRecord() *decision.TrendsRecord {
	rec := &decision.TrendsRecord{Store: "S01", Partition: 3, Bucket: "1d", Origin: testOrigin, GeneratedAt: testNow, Window: 7}
	rec.Top[0] = []decision.Ranked{
		{Series: "S01/SKU-0007", Trend: decision.Trend{Class: decision.Rising, Score: 5.123456, Last: 140, Reference: 80.5, Next: 131.25}},
		{Series: "S01/SKU-0002", Trend: decision.Trend{Class: decision.Rising, Score: 3.5, Last: 40, Reference: 20, Next: 33}},
	}
	rec.Top[3] = []decision.Ranked{{Series: "S01/SKU-0009", Trend: decision.Trend{Class: decision.Fading, Score: 4, Last: 0, Reference: 0}}}
	return rec
}

func planRecord(stock *decision.Stock) *decision.PlanRecord {
	p := &decision.Plan{Cycle: 14, Mean: 42.123456, Quantiles: []float64{41, 52, 55, 61}, LeadMean: 21, ReorderPoint: 30,
		OrderUpTo: 55, SafetyStock: 12.876544, Calibrated: true}
	if stock != nil {
		p.Order, p.HasOrder = 36, true
	}
	return &decision.PlanRecord{Series: "S01/SKU-0007", Bucket: "1d", Origin: testOrigin, GeneratedAt: testNow, Model: "auto",
		Method: decision.Conformal, Levels: decision.DefaultLevels, Policy: decision.Policy{}.WithDefaults(), Stock: stock, Plan: p}
}

// TestRecordsMatchSchemas checks the encoders' output against the
// schemas, and that the schemas reject what the encoders never write.
func TestRecordsMatchSchemas(t *testing.T) {
	tr := trendsRecord().AppendJSON(nil)
	if err := schematest.Validate(t, "trends", tr); err != nil {
		t.Errorf("trends record %s: %v", tr, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(tr, &doc); err != nil {
		t.Fatal(err)
	}
	first := doc["classes"].(map[string]any)["rising"].([]any)[0].(map[string]any)
	if first["score"] != 5.1235 || first["sku"] != "SKU-0007" || first["change_pct"] != 73.913 {
		t.Errorf("first rising entry %v", first)
	}
	if fading := doc["classes"].(map[string]any)["fading"].([]any)[0].(map[string]any); fading["change_pct"] != nil {
		t.Errorf("change of a zero reference: %v", fading["change_pct"])
	}
	for _, stock := range []*decision.Stock{nil, {OnHand: 10, OnOrder: 9}} {
		pr := planRecord(stock).AppendJSON(nil)
		if err := schematest.Validate(t, "replenishment", pr); err != nil {
			t.Errorf("plan record %s: %v", pr, err)
		}
		if err := json.Unmarshal(pr, &doc); err != nil {
			t.Fatal(err)
		}
		q := doc["cycle_demand"].(map[string]any)["quantiles"].(map[string]any)
		if q["0.95"] != 55.0 || len(q) != 4 || doc["store"] != "S01" || (stock == nil) != (doc["order_qty"] == nil) {
			t.Errorf("plan record %s", pr)
		}
	}
	for _, tc := range []struct {
		schema, doc, from, to string
	}{
		{"trends", string(tr), `"window":7`, `"window":0`},
		{"trends", string(tr), `"partition":3,`, ``},
		{"trends", string(tr), `"emerging":[]`, `"emerging":[],"viral":[]`},
		{"trends", string(tr), `"score":3.5`, `"score":-3.5`},
		{"replenishment", string(planRecord(nil).AppendJSON(nil)), `"method":"conformal"`, `"method":"guess"`},
		{"replenishment", string(planRecord(nil).AppendJSON(nil)), `"service_level":0.95`, `"service_level":1`},
		{"replenishment", string(planRecord(nil).AppendJSON(nil)), `"order_qty":null`, `"order_qty":-1`},
		{"replenishment", string(planRecord(nil).AppendJSON(nil)), `"0.95":55`, `"p95":55`},
	} {
		bad := strings.Replace(tc.doc, tc.from, tc.to, 1)
		if bad == tc.doc {
			t.Fatalf("%s: %q not found", tc.schema, tc.from)
		}
		if schematest.Validate(t, tc.schema, []byte(bad)) == nil {
			t.Errorf("%s schema accepts %s", tc.schema, bad)
		}
	}
}

func TestRecordEncodersDoNotAllocate(t *testing.T) {
	tr, pr := trendsRecord(), planRecord(&decision.Stock{OnHand: 1})
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(50, func() {
		buf = tr.AppendJSON(buf[:0])
		buf = pr.AppendJSON(buf[:0])
	}); n != 0 {
		t.Errorf("encoding allocates %v times", n)
	}
}
