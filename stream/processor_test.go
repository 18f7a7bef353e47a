package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/internal/schematest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// newCluster starts an in-process Kafka-protocol broker for a test.
type testEvent struct {
	ID    string  `json:"event_id"`
	Store string  `json:"store"`
	SKU   string  `json:"sku"`
	TS    string  `json:"ts"`
	Qty   float64 `json:"qty"`
	Price float64 `json:"price,omitempty"`
	Promo bool    `json:"promo,omitempty"`
}

func (e testEvent) message() kafka.Message {
	b, _ := json.Marshal(e)
	return kafka.Message{Key: []byte(e.Store + "/" + e.SKU), Value: b}
}

func produce(t testing.TB, brokers []string, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, BatchSize: 10000, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

type runningProcessor struct {
	p      *Processor
	db     *state.DB
	cancel context.CancelFunc
	done   chan error
}

// startProcessor runs a processor over a store in dir, after calling
// setup, if given, on it.
func startProcessor(t testing.TB, cfg Config, dir string, setup ...func(*Processor)) *runningProcessor {
	t.Helper()
	db, err := state.Open(state.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	for _, fn := range setup {
		fn(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rp := &runningProcessor{p: p, db: db, cancel: cancel, done: make(chan error, 1)}
	go func() { rp.done <- p.Run(ctx) }()
	return rp
}

func (rp *runningProcessor) stop(t testing.TB) {
	t.Helper()
	rp.cancel()
	select {
	case err := <-rp.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("processor did not stop within 30s")
	}
	if err := rp.db.Close(); err != nil {
		t.Error(err)
	}
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var base = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

func ts(day int, hour float64) string {
	return base.Add(time.Duration((float64(day)*24 + hour) * float64(time.Hour))).Format(time.RFC3339)
}

func testConfig(brokers []string) Config {
	cfg := DefaultConfig()
	cfg.Connection = Connection{Brokers: brokers}
	cfg.Group = "test"
	cfg.BatchWait = 5 * time.Millisecond
	cfg.FetchMaxWait = 100 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	cfg.Clock = func() time.Time { return base.Add(60 * 24 * time.Hour) }
	cfg.Limits.MaxPast = -1
	return cfg
}

// smallLSTM makes cfg publish a small, fast LSTM with a 7-bucket horizon.
func smallLSTM(cfg *Config) {
	cfg.Published, cfg.Model.Horizon = model.NameLSTM, 7
	cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window, cfg.Learner.MiniBatch = 1, 8, 14, 4
}

// TestProcessorEndToEnd produces good, duplicate, late and malformed
// events, runs the processor against an in-process broker and checks the
// forecasts, the dead letters and the HTTP API.
func TestProcessorEndToEnd(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 4, "sales")
	var msgs []kafka.Message
	truth := map[string][]float64{} // series -> daily totals, days 0..5
	for _, sku := range []string{"a", "b", "c"} {
		truth["s1/"+sku] = make([]float64, 6)
	}
	n := 0
	for day := range 7 {
		for i, sku := range []string{"a", "b", "c"} {
			if sku == "c" && day < 2 {
				continue // c starts late
			}
			qty := float64(day + i + 1)
			e := testEvent{ID: fmt.Sprintf("e%d", n), Store: "s1", SKU: sku, TS: ts(day, 10), Qty: qty, Price: 2, Promo: day == 3}
			n++
			msgs = append(msgs, e.message())
			if day < 6 {
				truth["s1/"+sku][day] += qty
			}
			if day == 4 {
				msgs = append(msgs, e.message()) // a duplicate
			}
		}
	}
	// Day 6 at 10:00 moved the watermark to 09:00, closing day 5; an event
	// for day 4 is now late.
	late := testEvent{ID: "late", Store: "s1", SKU: "a", TS: ts(4, 23), Qty: 100}
	msgs = append(msgs, late.message())
	bad := []kafka.Message{
		{Key: []byte("s1/a"), Value: []byte(`{not json`)},
		{Key: []byte("s1/a"), Value: []byte(`{"event_id":"x","store":"s1","sku":"a","ts":"2024-03-05T00:00:00Z"}`)},
		{Key: []byte("s1/a"), Value: []byte(`{"event_id":"y","store":"s1","sku":"a","ts":"2024-03-05T00:00:00Z","qty":-4}`)},
		{Key: []byte("s1/zz"), Value: []byte(`{"event_id":"z","store":"s1","sku":"a","ts":"2024-03-05T00:00:00Z","qty":4}`)},
	}
	msgs = append(msgs, bad...)
	produce(t, brokers, "sales", msgs...)

	rp := startProcessor(t, testConfig(brokers), t.TempDir())
	defer rp.stop(t)

	// a and b close days 0..5 (6 forecasts each), c closes days 2..5.
	forecasts := kafkatest.ReadTopic(t, brokers, "forecasts", 16, 30*time.Second, 30*time.Second)
	if len(forecasts) != 16 {
		t.Fatalf("got %d forecasts, want 16", len(forecasts))
	}
	origins := map[string][]string{}
	for _, m := range forecasts {
		if err := schematest.Validate(t, "forecast", m.Value); err != nil {
			t.Fatalf("forecast breaks schema/forecast.schema.json: %v\n%s", err, m.Value)
		}
		var f pipeline.ForecastRecord
		if err := json.Unmarshal(m.Value, &f); err != nil {
			t.Fatalf("forecast is not JSON: %v\n%s", err, m.Value)
		}
		if string(m.Key) != f.Series || f.Store+"/"+f.SKU != f.Series || f.Bucket != "1d" || f.Model != "auto" || f.ModelVersion != "mean ets 1.00; quantiles ets" {
			t.Errorf("bad forecast header: key %s, %+v", m.Key, f)
		}
		if len(f.Steps) != 28 {
			t.Fatalf("%d steps, want 28", len(f.Steps))
		}
		for h, s := range f.Steps {
			if !(0 <= s.P10 && s.P10 <= s.P50 && s.P50 <= s.P90) || s.Mean < 0 {
				t.Errorf("step %d breaks 0 <= p10 <= p50 <= p90: %+v", h, s)
			}
			if !s.Start.Equal(f.Origin.AddDate(0, 0, h+1)) {
				t.Errorf("step %d starts %v, origin %v", h, s.Start, f.Origin)
			}
		}
		origins[f.Series] = append(origins[f.Series], f.Origin.Format("01-02"))
	}
	for id, want := range map[string][]string{
		"s1/a": {"03-04", "03-05", "03-06", "03-07", "03-08", "03-09"},
		"s1/c": {"03-06", "03-07", "03-08", "03-09"},
	} {
		got := origins[id]
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s forecast origins %v, want %v", id, got, want)
		}
	}

	dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 5, 20*time.Second, 20*time.Second)
	var reasons []string
	for _, m := range dlq {
		reasons = append(reasons, header(m, "reason"))
		if header(m, "detail") == "" || header(m, "source") == "" {
			t.Errorf("dead letter without detail or source headers: %v", m.Headers)
		}
	}
	slices.Sort(reasons)
	if want := []string{"invalid_json", "key_mismatch", "late", "missing_field", "qty_out_of_range"}; !slices.Equal(reasons, want) {
		t.Errorf("dead-letter reasons %v, want %v", reasons, want)
	}
	for _, m := range dlq {
		if header(m, "reason") == "invalid_json" && string(m.Value) != "{not json" {
			t.Errorf("dead letter lost the original bytes: %q", m.Value)
		}
	}

	waitFor(t, 10*time.Second, "readiness", rp.p.Ready)
	srv := httptest.NewServer(rp.p.Handler(nil))
	defer srv.Close()
	for id, want := range truth {
		var got SeriesResponse
		waitFor(t, 10*time.Second, "committed state of "+id, func() bool {
			resp, err := http.Get(srv.URL + "/v1/series/" + id)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			return len(got.Buckets) > 0 && got.Buckets[len(got.Buckets)-1].Start.Equal(base.AddDate(0, 0, 5))
		})
		var qty []float64
		for _, b := range got.Buckets {
			qty = append(qty, b.Qty)
		}
		if id == "s1/c" {
			want = want[2:]
		}
		if !slices.Equal(qty, want) {
			t.Errorf("%s buckets %v, want %v", id, qty, want)
		}
		if string(got.Forecast) == "null" {
			t.Errorf("%s has no latest forecast", id)
		}
		if len(got.Open) != 1 || got.Open[0].Events != 1 {
			t.Errorf("%s open buckets %+v, want day 6 with one event", id, got.Open)
		}
	}
	for path, code := range map[string]int{
		"/v1/series/s1/nope": http.StatusNotFound,
		"/healthz":           http.StatusOK,
		"/readyz":            http.StatusOK,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, code)
		}
	}
}

// TestProcessorResumesFromState stops a processor, produces more, and
// checks a new processor over the same state directory counts every event
// exactly once.
func TestProcessorResumesFromState(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 2, "sales")
	dir := t.TempDir()
	cfg := testConfig(brokers)
	var first []kafka.Message
	for day := range 3 {
		first = append(first, testEvent{ID: fmt.Sprintf("d%d", day), Store: "s", SKU: "k", TS: ts(day, 12), Qty: 1}.message())
	}
	produce(t, brokers, "sales", first...)
	rp := startProcessor(t, cfg, dir)
	if got := kafkatest.ReadTopic(t, brokers, "forecasts", 2, 20*time.Second, 20*time.Second); len(got) != 2 {
		t.Fatalf("%d forecasts before restart, want 2", len(got))
	}
	rp.stop(t)

	// Resend day 2's event (a duplicate across the restart) and add days 3, 4.
	var second []kafka.Message
	for day := 2; day < 5; day++ {
		second = append(second, testEvent{ID: fmt.Sprintf("d%d", day), Store: "s", SKU: "k", TS: ts(day, 12), Qty: 1}.message())
	}
	produce(t, brokers, "sales", second...)
	rp = startProcessor(t, cfg, dir)
	defer rp.stop(t)
	if got := kafkatest.ReadTopic(t, brokers, "forecasts", 4, 20*time.Second, 20*time.Second); len(got) != 4 {
		t.Fatalf("%d forecasts after restart, want 4", len(got))
	}
	waitFor(t, 10*time.Second, "readiness", rp.p.Ready)
	var resp *SeriesResponse
	waitFor(t, 10*time.Second, "day 3 committed", func() bool {
		var err error
		resp, err = rp.p.Series("s/k")
		return err == nil && len(resp.Buckets) == 4
	})
	for i, b := range resp.Buckets {
		if b.Qty != 1 {
			t.Errorf("day %d counted %v times, want once", i, b.Qty)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		edit       func(*Config)
	}{
		{"no brokers", "Brokers is required", func(c *Config) { c.Brokers = nil }},
		{"same topics", "must differ", func(c *Config) { c.OutputTopic = "sales" }},
		{"no group", "must be set", func(c *Config) { c.Group = "" }},
		{"bad policy", "LatePolicy", func(c *Config) { c.LatePolicy = "keep" }},
		{"bad model", "unknown forecaster", func(c *Config) { c.Published = "prophet" }},
		{"missing p90", "required level 0.9", func(c *Config) { c.Model.Levels = []float64{0.1, 0.5} }},
		{"bad start", "StartOffset", func(c *Config) { c.StartOffset = "middle" }},
		{"negative dedup", "DedupHorizon", func(c *Config) { c.DedupHorizon = -time.Hour }},
		{"zero batch", "BatchSize", func(c *Config) { c.BatchSize = 0 }},
		{"zero checkpoint cadence", "CheckpointEvery", func(c *Config) { c.CheckpointEvery = 0 }},
		{"standby without changelog", "Standby needs the changelog", func(c *Config) { c.Standby, c.NoChangelog = true, true }},
		{"negative lateness", "Lateness", func(c *Config) { c.Window.Lateness = -time.Second }},
		{"negative replication", "ReplicationFactor", func(c *Config) { c.ReplicationFactor = -1 }},
		{"huge dead letters", "DLQMaxBytes", func(c *Config) { c.DLQMaxBytes = 1 << 20 }},
		{"negative retirement", "RetireAfter", func(c *Config) { c.RetireAfter = -time.Hour }},
		{"negative idle timeout", "IdleTimeout", func(c *Config) { c.IdleTimeout = -time.Second }},
		{"negative dedup cap", "DedupMaxIDs", func(c *Config) { c.DedupMaxIDs = -1 }},
	} {
		cfg := DefaultConfig()
		cfg.Brokers = []string{"x"}
		tc.edit(&cfg)
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: validate = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Brokers = []string{"x"}
	cfg.Window.Lateness, cfg.MaxSeries, cfg.DedupHorizon, cfg.DLQMaxBytes = 0, 0, 0, 0 // zero means zero
	cfg.DedupMaxIDs, cfg.RetireAfter, cfg.Limits.MaxPast, cfg.IdleTimeout = 0, 0, 0, 0
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "state DB") {
		t.Errorf("New without a DB = %v", err)
	}
}

// TestLSTMCheckpointSurvivesRestart publishes LSTM forecasts, restarts the
// processor over the same state and checks the model continues from its
// checkpoint; a restart with another model shape fails with a clear error.
func TestLSTMCheckpointSurvivesRestart(t *testing.T) {
	for _, every := range []int{1, 1000} {
		t.Run(fmt.Sprintf("checkpoint every %d closes", every), func(t *testing.T) {
			testCheckpointSurvivesRestart(t, every)
		})
	}
}

func testCheckpointSurvivesRestart(t *testing.T, every int) {
	brokers := kafkatest.NewCluster(t, 1, "sales")
	dir := t.TempDir()
	cfg := testConfig(brokers)
	smallLSTM(&cfg)
	cfg.CheckpointEvery = every
	var msgs []kafka.Message
	for day := range 30 {
		for _, sku := range []string{"a", "b", "c"} {
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s%d", sku, day), Store: "s", SKU: sku, TS: ts(day, 12), Qty: float64(1 + day%3)}.message())
		}
	}
	produce(t, brokers, "sales", msgs[:60]...)
	rp := startProcessor(t, cfg, dir)
	before := kafkatest.ReadTopic(t, brokers, "forecasts", 19*3, 30*time.Second, 30*time.Second)
	waitFor(t, 10*time.Second, "training metrics", func() bool { return testutilCounter(rp.p.m.trainSteps) > 0 })
	rp.stop(t)
	steps := func(msgs []kafka.Message) int {
		most := 0
		for _, m := range msgs {
			var f pipeline.ForecastRecord
			json.Unmarshal(m.Value, &f)
			var layers, hidden, n int
			fmt.Sscanf(f.ModelVersion, "%dx%d/steps=%d", &layers, &hidden, &n)
			most = max(most, n)
		}
		return most
	}
	trained := steps(before)
	if trained == 0 {
		t.Fatal("the LSTM never trained before the restart")
	}

	produce(t, brokers, "sales", msgs[60:]...)
	rp = startProcessor(t, cfg, dir)
	all := kafkatest.ReadTopic(t, brokers, "forecasts", 29*3, 30*time.Second, 30*time.Second)
	rp.stop(t)
	var after []kafka.Message
	for _, m := range all {
		var f pipeline.ForecastRecord
		json.Unmarshal(m.Value, &f)
		if f.Origin.After(base.AddDate(0, 0, 18)) {
			after = append(after, m)
		}
	}
	if len(after) == 0 || steps(after) <= trained {
		t.Fatalf("after the restart the LSTM reports %d steps, before it %d: it did not continue from its checkpoint", steps(after), trained)
	}

	cfg.Learner.Hidden = 16
	db, err := state.Open(state.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := New(cfg, db)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !errors.Is(err, model.ErrLSTMMismatch) || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("a processor with another LSTM shape ran over the old state: %v", err)
	}
}

// TestChangelogRestore moves partitions between instances with separate
// state directories: a new instance restores the state from the changelog
// (it would start empty otherwise: StartOffset is latest), and an instance
// whose local state fell behind restores the newer one. Every event is
// counted exactly once throughout.
func TestChangelogRestore(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 2, "sales")
	cfg := testConfig(brokers)
	smallLSTM(&cfg)
	day := func(d int) []kafka.Message {
		var msgs []kafka.Message
		for _, sku := range []string{"a", "b", "c", "d"} {
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: float64(1 + d%4)}.message())
		}
		return msgs
	}
	want := func(d int) float64 { return float64(1 + d%4) }
	check := func(rp *runningProcessor, lastClosed int) {
		t.Helper()
		waitFor(t, 20*time.Second, "readiness", rp.p.Ready)
		for _, sku := range []string{"a", "b", "c", "d"} {
			var resp *SeriesResponse
			waitFor(t, 20*time.Second, "day "+fmt.Sprint(lastClosed)+" of s/"+sku, func() bool {
				var err error
				resp, err = rp.p.Series("s/" + sku)
				return err == nil && len(resp.Buckets) == lastClosed+1
			})
			for d, b := range resp.Buckets {
				if b.Qty != want(d) {
					t.Fatalf("s/%s day %d counted %v, want %v", sku, d, b.Qty, want(d))
				}
			}
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	var msgs []kafka.Message
	for d := range 20 {
		msgs = append(msgs, day(d)...)
	}
	produce(t, brokers, "sales", msgs...)
	a := startProcessor(t, cfg, dirA)
	check(a, 18)
	a.stop(t)

	// A new instance with an empty store restores from the changelog;
	// without it, it would start from the end of the topic.
	cfg.StartOffset = StartLatest
	b := startProcessor(t, cfg, dirB)
	check(b, 18)
	var msgs2 []kafka.Message
	for d := 20; d < 30; d++ {
		msgs2 = append(msgs2, day(d)...)
	}
	produce(t, brokers, "sales", msgs2...)
	check(b, 28)
	restored := testutilCounter(b.p.m.restoreRecords)
	b.stop(t)
	if restored == 0 {
		t.Error("the new instance restored no changelog record")
	}

	// The first instance's store is now behind: it restores again.
	a = startProcessor(t, cfg, dirA)
	defer a.stop(t)
	check(a, 28)
	if testutilCounter(a.p.m.restoreRecords) == 0 {
		t.Error("the instance with a stale store did not restore")
	}
}

func testutilCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestStandby runs a second instance with standby enabled next to a first:
// it keeps the first's partition warm from the changelog, so when the
// first leaves, taking its partition over needs no full restore, and every
// event still counts once. It runs against one broker, and against three
// listed after an address nobody listens on: restores, standby and the
// rest of the processor must not depend on the first broker listed.
func TestStandby(t *testing.T) {
	t.Run("one broker", func(t *testing.T) { testStandby(t, kafkatest.NewCluster(t, 2, "sales")) })
	t.Run("first broker unreachable", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2),
			kfake.SeedTopics(2, "sales"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testStandby(t, append([]string{kafkatest.FreeAddr(t)}, c.ListenAddrs()...))
	})
}

// dayEvents returns an event at noon of each day from from to before to
// for each of store s's skus, selling 1 + day%3 units.
func dayEvents(skus []string, from, to int) []kafka.Message {
	var msgs []kafka.Message
	for d := from; d < to; d++ {
		for _, sku := range skus {
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: float64(1 + d%3)}.message())
		}
	}
	return msgs
}

func testStandby(t *testing.T, brokers []string) {
	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	skus := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} // over both partitions
	days := func(from, to int) []kafka.Message { return dayEvents(skus, from, to) }
	check := func(rp *runningProcessor, lastClosed int) {
		t.Helper()
		waitFor(t, 30*time.Second, "readiness", rp.p.Ready)
		for _, sku := range skus {
			var resp *SeriesResponse
			waitFor(t, 30*time.Second, fmt.Sprintf("day %d of s/%s", lastClosed, sku), func() bool {
				var err error
				resp, err = rp.p.Series("s/" + sku)
				return err == nil && len(resp.Buckets) == lastClosed+1
			})
			for d, b := range resp.Buckets {
				if b.Qty != float64(1+d%3) {
					t.Fatalf("s/%s day %d counted %v, want %v", sku, d, b.Qty, 1+d%3)
				}
			}
		}
	}
	produce(t, brokers, "sales", days(0, 10)...)
	a := startProcessor(t, cfg, t.TempDir())
	check(a, 8)

	cfg.Standby, cfg.StandbyInterval = true, 100*time.Millisecond
	b := startProcessor(t, cfg, t.TempDir())
	defer b.stop(t)
	waitFor(t, 30*time.Second, "a partition each", func() bool {
		return len(a.p.Partitions()) == 1 && len(b.p.Partitions()) == 1 && a.p.Ready() && b.p.Ready()
	})
	aPart := a.p.Partitions()[0]
	produce(t, brokers, "sales", days(10, 20)...)
	waitFor(t, 30*time.Second, "the standby to follow the other partition", func() bool {
		want, err := pipeline.LocalOffset(a.db, aPart)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pipeline.LocalOffset(b.db, aPart)
		return err == nil && got == want && got > 0 && gaugeValue(b.p.m.standbyParts) == 1
	})
	full := testutilCounter(b.p.m.restores.WithLabelValues("full"))

	a.stop(t)
	produce(t, brokers, "sales", days(20, 25)...)
	waitFor(t, 30*time.Second, "b to take both partitions", func() bool { return len(b.p.Partitions()) == 2 })
	check(b, 23)
	if got := testutilCounter(b.p.m.restores.WithLabelValues("full")); got != full {
		t.Errorf("taking the warm partition over took %v full restores", got-full)
	}
}
