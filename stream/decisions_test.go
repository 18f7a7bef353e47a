package stream

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/internal/schematest"
)

// planJSON is the part of a replenishment record the test checks.
type planJSON struct {
	Series string    `json:"series"`
	Origin time.Time `json:"origin"`
	Policy struct {
		LeadTime     int     `json:"lead_time"`
		ReviewPeriod int     `json:"review_period"`
		PackSize     float64 `json:"pack_size"`
	} `json:"policy"`
	OrderUpTo float64 `json:"order_up_to"`
	Stock     *struct {
		OnHand  float64 `json:"on_hand"`
		OnOrder float64 `json:"on_order"`
	} `json:"stock"`
	OrderQty *float64 `json:"order_qty"`
}

// TestProcessorDecisions runs a processor with decisions on over 45 days
// of four series, one of which triples after day 30, with a catalog entry
// and a stock position for another and a bad catalog record, and checks
// the replenishment and trends topics, the dead letter and the HTTP API:
// the catalog is read whole before the first close (every plan of the
// series carries its policy), the order is rounded to its pack size, and
// the series that tripled is ranked in its store's trends records.
func TestProcessorDecisions(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 4, "sales", "catalog", "inventory")
	produce(t, brokers, "catalog",
		kafka.Message{Key: []byte("s1/a"), Value: []byte(`{"lead_time":3,"review_period":4,"pack_size":12}`)},
		kafka.Message{Key: []byte("s1/b"), Value: []byte(`{"lead_time":"x"}`)})
	produce(t, brokers, "inventory",
		kafka.Message{Key: []byte("s1/a"), Value: []byte(`{"on_hand":5,"on_order":2,"ts":"2024-03-01T00:00:00Z"}`)})
	const days = 45
	var msgs []kafka.Message
	series := []string{"s1/a", "s1/b", "s2/a", "s2/b"}
	for day := range days {
		for i, id := range series {
			store, sku, _ := strings.Cut(id, "/")
			qty := float64(8 + (day*7+i*3)%5)
			if id == "s1/b" && day >= 30 {
				qty *= 3
			}
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s-%d", id, day), Store: store, SKU: sku, TS: ts(day, 10), Qty: qty}.message())
		}
	}
	produce(t, brokers, "sales", msgs...)

	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	cfg.Decisions.On = true
	// The side readers start late: the partitions must wait for them.
	rp := startProcessor(t, cfg, t.TempDir(), func(p *Processor) { p.sideDelay = 2 * time.Second })
	defer rp.stop(t)

	// Days 0 to 43 close: 44 plans per series.
	const closes = days - 1
	plans := kafkatest.ReadTopic(t, brokers, "replenishment", closes*len(series), 30*time.Second, 60*time.Second)
	if len(plans) != closes*len(series) {
		t.Fatalf("%d replenishment records, want %d", len(plans), closes*len(series))
	}
	var lastA planJSON
	for _, m := range plans {
		if err := schematest.Validate(t, "replenishment", m.Value); err != nil {
			t.Fatalf("replenishment record breaks its schema: %v\n%s", err, m.Value)
		}
		var p planJSON
		if err := json.Unmarshal(m.Value, &p); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != p.Series {
			t.Errorf("replenishment record keyed %q for %q", m.Key, p.Series)
		}
		switch p.Series {
		case "s1/a":
			if p.Policy.LeadTime != 3 || p.Policy.ReviewPeriod != 4 || p.Policy.PackSize != 12 || p.Stock == nil || p.OrderQty == nil {
				t.Errorf("s1/a at %v: policy %+v, stock %v: want the catalog's policy and the inventory's stock", p.Origin, p.Policy, p.Stock)
			}
			if p.Origin.After(lastA.Origin) {
				lastA = p
			}
		default:
			if p.Policy.LeadTime != 7 || p.Stock != nil || p.OrderQty != nil {
				t.Errorf("%s: policy %+v, stock %v, order %v: want the defaults and no order", p.Series, p.Policy, p.Stock, p.OrderQty)
			}
		}
	}
	if lastA.OrderQty != nil {
		short := lastA.OrderUpTo - 7
		if o := *lastA.OrderQty; math.Mod(o, 12) != 0 || o < short-1e-3 || o >= short+12 {
			t.Errorf("s1/a orders %v for a shortfall of %v: want the next multiple of 12", o, short)
		}
	}

	trends := kafkatest.ReadTopic(t, brokers, "trends", 0, 5*time.Second, 30*time.Second)
	ranked := false
	perStore := map[string]int{}
	for _, m := range trends {
		if err := schematest.Validate(t, "trends", m.Value); err != nil {
			t.Fatalf("trends record breaks its schema: %v\n%s", err, m.Value)
		}
		var rec trendsJSON
		if err := json.Unmarshal(m.Value, &rec); err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != rec.Store {
			t.Errorf("trends record keyed %q for store %q", m.Key, rec.Store)
		}
		perStore[rec.Store]++
		for class, l := range rec.Classes {
			for _, e := range l {
				if e.Series != "s1/b" {
					t.Errorf("%s ranked %s at %v; only s1/b changed", e.Series, class, rec.Origin)
				} else if class == "emerging" || class == "rising" {
					ranked = true
				}
			}
		}
	}
	// One record per store, partition holding its series, and close, ranked
	// series or not: s2's series never rank.
	if perStore["s2"] < closes {
		t.Errorf("%d trends records of store s2, want one per close of each partition holding its series (at least %d)", perStore["s2"], closes)
	}
	if !ranked {
		t.Errorf("s1/b, tripled from day 30, is in none of %d trends records as rising or emerging", len(trends))
	}

	dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 1, 5*time.Second, 20*time.Second)
	if len(dlq) != 1 || header(dlq[0], "reason") != "invalid_json" || !strings.HasPrefix(header(dlq[0], "source"), "catalog/") {
		t.Errorf("dead letters %v, want the bad catalog record's", dlq)
	}

	waitFor(t, 10*time.Second, "readiness", rp.p.Ready)
	srv := httptest.NewServer(rp.p.Handler(nil))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, 10*time.Second, "the last plan of s1/a in the store", func() bool {
		code, body := get("/v1/series/s1/a/replenishment")
		var p planJSON
		return code == http.StatusOK && json.Unmarshal([]byte(body), &p) == nil && p.Origin.Equal(base.AddDate(0, 0, closes-1))
	})
	code, body := get("/v1/trending?store=s1&class=rising,emerging&limit=5")
	var tr TrendingResponse
	if err := json.Unmarshal([]byte(body), &tr); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/trending: %d %s", code, body)
	}
	got := append(tr.Classes["rising"], tr.Classes["emerging"]...)
	if len(tr.Classes) != 2 || !slices.ContainsFunc(got, func(s TrendingSeries) bool { return s.Series == "s1/b" && s.Store == "s1" && s.SKU == "b" }) {
		t.Errorf("trending in s1: %+v, want s1/b", tr)
	}
	for path, want := range map[string]int{
		"/v1/series/s9/x/replenishment": http.StatusNotFound,
		"/v1/trending?class=soaring":    http.StatusBadRequest,
		"/v1/trending?limit=0":          http.StatusBadRequest,
		"/v1/trending":                  http.StatusOK,
	} {
		if code, body := get(path); code != want {
			t.Errorf("GET %s = %d %s, want %d", path, code, body, want)
		}
	}
}

func TestDecisionTopicsConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // part of the error, "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no side topics", func(c *Config) { c.CatalogTopic, c.InventoryTopic = "", "" }, ""},
		{"trends is the output", func(c *Config) { c.TrendsTopic = c.OutputTopic }, `topic "forecasts" is used twice`},
		{"catalog is the inventory", func(c *Config) { c.CatalogTopic = c.InventoryTopic }, `topic "inventory" is used twice`},
		{"no replenishment topic", func(c *Config) { c.ReplenishmentTopic = "" }, "must be set when decisions are on"},
		{"off ignores them", func(c *Config) { c.Decisions.On, c.TrendsTopic = false, c.OutputTopic }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig([]string{"127.0.0.1:1"})
			cfg.Decisions.On = true
			tc.set(&cfg)
			err := cfg.validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
