package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/model"
)

// TestProcessorPromotionPlans runs a processor with promotions on over 56
// days of two series with the same sales, doubled on the Tuesdays of
// every other week, with a plan on the plans topic for one of them (every
// Tuesday of its horizon) and a bad plan record, and checks the published
// forecasts, the dead letter and the what-if API: the planned series'
// Tuesdays are lifted against the other's by the lift over the
// promotion mix its forecaster expects, its other days are unchanged, and
// a what-if of one promoted Tuesday lifts only that day, by the lift.
func TestProcessorPromotionPlans(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 4, "sales", "plans")
	const days, horizon = 56, 28
	day := func(d int) string { return base.AddDate(0, 0, d).Format(time.DateOnly) }
	var tuesdays []string
	for d := days - 1; d < days-1+horizon; d++ {
		if d%7 == 1 {
			tuesdays = append(tuesdays, fmt.Sprintf("%q", day(d)))
		}
	}
	produce(t, brokers, "plans",
		kafka.Message{Key: []byte("s1/a"), Value: []byte(`{"promo":[` + strings.Join(tuesdays, ",") + `]}`)},
		kafka.Message{Key: []byte("s1/b"), Value: []byte(`{"promo":"2024-05-01"}`)})
	var msgs []kafka.Message
	for d := range days {
		promo := d%7 == 1 && (d/7)%2 == 0
		qty := 10.0
		if promo {
			qty = 20
		}
		for _, id := range []string{"s1/a", "s2/a"} {
			store, sku, _ := strings.Cut(id, "/")
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s-%d", id, d), Store: store, SKU: sku, TS: ts(d, 10), Qty: qty, Promo: promo}.message())
		}
	}
	produce(t, brokers, "sales", msgs...)

	cfg := testConfig(brokers)
	cfg.Published = model.NameETS
	cfg.Promotions.On = true
	rp := startProcessor(t, cfg, t.TempDir())
	defer rp.stop(t)

	const closes = days - 1
	recs := kafkatest.ReadTopic(t, brokers, "forecasts", 2*closes, 30*time.Second, 60*time.Second)
	last := map[string]forecastJSON{}
	for _, m := range recs {
		var f forecastJSON
		if err := json.Unmarshal(m.Value, &f); err != nil {
			t.Fatal(err)
		}
		if old, ok := last[string(m.Key)]; !ok || f.Origin.After(old.Origin) {
			last[string(m.Key)] = f
		}
	}
	planned, plain := last["s1/a"], last["s2/a"]
	if !planned.Origin.Equal(base.AddDate(0, 0, closes-1)) || len(planned.Steps) != horizon || len(plain.Steps) != horizon {
		t.Fatalf("last forecasts: %+v and %+v", planned, plain)
	}
	for h := range planned.Steps {
		d := closes + h
		r := planned.Steps[h].Mean / plain.Steps[h].Mean
		// Half the Tuesdays were promotions at a lift of 2: the baseline
		// is the mix over 1.5, the planned Tuesday twice that.
		want := 1.0
		if d%7 == 1 {
			want = 2 / 1.5
		}
		if math.Abs(r-want) > 0.08 {
			t.Errorf("day %d: planned over plain forecast %.3f, want about %.3f", d, r, want)
		}
	}

	dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 1, 5*time.Second, 20*time.Second)
	if len(dlq) != 1 || header(dlq[0], "reason") != "invalid_json" || !strings.HasPrefix(header(dlq[0], "source"), "plans/") {
		t.Errorf("dead letters %v, want the bad plan's", dlq)
	}

	waitFor(t, 10*time.Second, "readiness", rp.p.Ready)
	srv := httptest.NewServer(rp.p.Handler(nil))
	defer srv.Close()
	post := func(path, body string) (int, []byte) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	firstTuesday := closes + (8-closes%7)%7
	body := fmt.Sprintf(`{"promo":[%q]}`, day(firstTuesday))
	waitFor(t, 10*time.Second, "the last forecast in the store", func() bool {
		code, b := post("/v1/series/s2/a/whatif", body)
		var w WhatIfResponse
		return code == http.StatusOK && json.Unmarshal(b, &w) == nil && w.Origin.Equal(planned.Origin)
	})
	for _, id := range []string{"s1/a", "s2/a"} {
		code, b := post("/v1/series/"+id+"/whatif", body)
		var w WhatIfResponse
		if err := json.Unmarshal(b, &w); code != http.StatusOK || err != nil {
			t.Fatalf("what-if of %s: %d %s", id, code, b)
		}
		if math.Abs(w.Lift-2) > 0.2 || w.PublishedUnderPlan != (id == "s1/a") || len(w.Steps) != horizon {
			t.Errorf("what-if of %s: lift %.3f, published under a plan %v, %d steps", id, w.Lift, w.PublishedUnderPlan, len(w.Steps))
		}
		for h, s := range w.Steps {
			promo := closes+h == firstTuesday
			if s.Promo != promo || (s.Uplift > 1e-9) != promo {
				t.Errorf("%s step %d: promo %v, uplift %.3f", id, h, s.Promo, s.Uplift)
			}
			if promo && (math.Abs(s.Baseline.Mean-10) > 1.5 || math.Abs(s.Planned.Mean/s.Baseline.Mean-w.Lift) > 1e-3 ||
				math.Abs(w.TotalUplift-s.Uplift) > 1e-3) {
				t.Errorf("%s promoted step: %+v, total uplift %.3f: want a baseline near 10 lifted by %.3f", id, s, w.TotalUplift, w.Lift)
			}
		}
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/v1/series/s9/x/whatif", body, http.StatusNotFound},
		{"/v1/series/s2/a/whatif", `{"promo":["tomorrow"]}`, http.StatusBadRequest},
		{"/v1/series/s2/a/whatif", `{}`, http.StatusBadRequest},
		{"/v1/series/s2/a/whatif", `{"promo":[]}`, http.StatusOK},
		{"/v1/series/s2/a/whatif", `{"promo":["` + strings.Repeat("x", maxWhatIfBody) + `"]}`, http.StatusRequestEntityTooLarge},
	} {
		if code, b := post(tc.path, tc.body); code != tc.want {
			t.Errorf("POST %s %.40s = %d %s, want %d", tc.path, tc.body, code, bytes.TrimSpace(b), tc.want)
		}
	}
}

func TestPlansTopicConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string // part of the error, "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"no plans topic", func(c *Config) { c.PlansTopic = "" }, ""},
		{"plans is the input", func(c *Config) { c.PlansTopic = c.InputTopic }, `PlansTopic "sales" is also used`},
		{"plans is the catalog", func(c *Config) { c.Decisions.On, c.PlansTopic = true, c.CatalogTopic }, `PlansTopic "catalog" is also used`},
		{"off ignores it", func(c *Config) { c.Promotions.On, c.PlansTopic = false, c.InputTopic }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig([]string{"127.0.0.1:1"})
			cfg.Promotions.On = true
			tc.set(&cfg)
			err := cfg.validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want %q", err, tc.want)
			}
		})
	}
}
