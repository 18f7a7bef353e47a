package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/internal/schematest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// wantAll is a sink that wants every close's forecasts and drops them.
type wantAll struct{ discardSink }

func (wantAll) Wants(int64) bool { return true }

// TestExplainHTTP serves GET /v1/series/{store}/{sku}/explain while a
// goroutine playing partition 0's task processes and commits a day after
// another and lends its engine between batches, as a task does while it
// fetches: the answers must be whole and valid (run it with -race), with
// 404 for unknown series and partitions this instance does not serve,
// 409 for a model without a learner, 400 for bad parameters, and the
// metrics must count them.
func TestExplainHTTP(t *testing.T) {
	for _, tc := range []struct {
		model string
		code  int // of a known series
	}{
		{model.NameLSTM, http.StatusOK},
		{pipeline.NameAuto, http.StatusOK},
		{"tsb", http.StatusConflict},
	} {
		t.Run(tc.model, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Brokers = []string{"unused:9092"}
			cfg.Published = tc.model
			cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 21
			cfg.LearnerMinSteps = 5
			cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			p := newTestProcessor(t, cfg, state.Config{InMemory: true})
			eng, err := pipeline.NewEngine(p.Config().Config, wantAll{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := eng.Load(p.db, 0); err != nil {
				t.Fatal(err)
			}
			gate := p.explain.open(0, eng)
			p.setOwned(0, true)
			var day atomic.Int64
			stop := make(chan struct{})
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				defer p.explain.close(0, gate)
				var b state.Batch
				for d := 0; ; d++ {
					select {
					case <-stop:
						return
					default:
					}
					b.Reset()
					eng.BeginBatch()
					for i, id := range []string{"s/a", "s/b"} {
						store, sku, _ := strings.Cut(id, "/")
						ts := base.AddDate(0, 0, d).Add(12 * time.Hour).Format(time.RFC3339)
						rec := pipeline.Record{Offset: int64(2*d + i), Key: []byte(id),
							Value: fmt.Appendf(nil, `{"event_id":"e%d","store":"%s","sku":"%s","ts":"%s","qty":%d}`, d, store, sku, ts, 5+(d*(i+2))%7)}
						if err := eng.Process(&rec); err != nil {
							t.Error(err)
							return
						}
					}
					if err := eng.AppendState(&b, 0, int64(2*d), int64(2*d+2), false); err != nil {
						t.Error(err)
						return
					}
					if _, err := p.db.Commit(&b); err != nil {
						t.Error(err)
						return
					}
					day.Store(int64(d))
					gate.release()
					time.Sleep(time.Millisecond) // the fetch
					gate.take()
				}
			}()
			defer func() { close(stop); <-finished }()
			for day.Load() < 60 {
				time.Sleep(10 * time.Millisecond)
			}

			srv := httptest.NewServer(p.Handler(reg))
			defer srv.Close()
			get := func(path string) (int, []byte) {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			ok := 0
			for range 5 {
				code, body := get("/v1/series/s/a/explain?steps=16")
				if code != tc.code {
					t.Fatalf("GET explain = %d %s, want %d", code, body, tc.code)
				}
				if code != http.StatusOK {
					continue
				}
				ok++
				if err := schematest.Validate(t, "explanation", body); err != nil {
					t.Fatalf("explanation breaks its schema: %v\n%s", err, body)
				}
				var r ExplainResponse
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				a := r.Attribution
				if r.Series != "s/a" || r.Model != tc.model || r.Learner != model.NameLSTM || a == nil || a.Steps != 16 {
					t.Fatalf("explanation %s", body)
				}
				sum := a.Residual
				for _, v := range a.Groups {
					sum += v
				}
				if d := a.Forecast - a.Baseline; math.Abs(sum-d) > 1e-9*(1+math.Abs(d)) {
					t.Errorf("groups and residual sum to %g, the change is %g", sum, d)
				}
				if (tc.model == pipeline.NameAuto) != (len(r.Mix) == 4) {
					t.Errorf("mix %+v for model %s", r.Mix, tc.model)
				}
			}
			for path, want := range map[string]int{
				"/v1/series/s/zz/explain":           http.StatusNotFound,
				"/v1/series/s/a/explain?steps=0":    http.StatusBadRequest,
				"/v1/series/s/a/explain?steps=x":    http.StatusBadRequest,
				"/v1/series/s/a/explain?buckets=99": map[bool]int{true: http.StatusConflict, false: http.StatusBadRequest}[tc.model == "tsb"],
			} {
				if code, body := get(path); code != want {
					t.Errorf("GET %s = %d %s, want %d", path, code, body, want)
				}
			}
			_, metrics := get("/metrics")
			for _, want := range []string{
				fmt.Sprintf("trendstream_explanations_total %d\n", ok),
				"trendstream_explanation_errors_total{reason=\"not_found\"} 1\n",
			} {
				if !strings.Contains(string(metrics), want) {
					t.Errorf("metrics lack %q", want)
				}
			}
			p.setOwned(0, false)
			if code, body := get("/v1/series/s/a/explain"); code != http.StatusNotFound {
				t.Errorf("GET explain of a partition not served = %d %s, want 404", code, body)
			}
		})
	}
}

// TestProcessorExplain runs a processor publishing a small LSTM against
// an in-process broker and asks for explanations while events keep
// arriving: the tasks lend their engines between batches, every answer is
// whole and valid, and the origins explained follow the closes.
func TestProcessorExplain(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 4, "sales")
	series := []string{"s1/a", "s1/b", "s2/a", "s2/b"}
	days := func(from, to int) []kafka.Message {
		var msgs []kafka.Message
		for day := from; day < to; day++ {
			for i, id := range series {
				store, sku, _ := strings.Cut(id, "/")
				msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s-%d", id, day), Store: store, SKU: sku,
					TS: ts(day, 10), Qty: float64(8 + (day*7+i*3)%5)}.message())
			}
		}
		return msgs
	}
	produce(t, brokers, "sales", days(0, 40)...)
	cfg := testConfig(brokers)
	smallLSTM(&cfg)
	rp := startProcessor(t, cfg, t.TempDir())
	defer rp.stop(t)
	kafkatest.ReadTopic(t, brokers, "forecasts", 39*len(series), 30*time.Second, 60*time.Second)
	waitFor(t, 10*time.Second, "readiness", rp.p.Ready)

	srv := httptest.NewServer(rp.p.Handler(nil))
	defer srv.Close()
	// restores counts the partition restores so far: a rebalance on a
	// loaded machine rebuilds partitions, and while a partition is rebuilt
	// its series are unknown (404), as on /v1/series.
	restores := func() float64 {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var n float64
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "trendstream_restores_total{") {
				_, v, _ := strings.Cut(line, " ")
				x, _ := strconv.ParseFloat(v, 64)
				n += x
			}
		}
		return n
	}
	restored := restores()
	more, produced := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(more)
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
			BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		defer w.Close()
		for d := 40; d < 55; d++ {
			if err := w.WriteMessages(context.Background(), days(d, d+1)...); err != nil {
				produced <- err
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	var first, last time.Time
	answers := 0
	for done := false; !done; {
		select {
		case <-more:
			done = true
		default:
		}
		resp, err := http.Get(srv.URL + "/v1/series/s1/b/explain?steps=8")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound && restores() > restored {
			t.Logf("GET explain = 404 while a partition is rebuilt: %s", body)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET explain = %d %s", resp.StatusCode, body)
		}
		if err := schematest.Validate(t, "explanation", body); err != nil {
			t.Fatalf("explanation breaks its schema: %v\n%s", err, body)
		}
		var r ExplainResponse
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		if r.Learner != model.NameLSTM || r.Attribution == nil || r.Origin.Before(last) || r.Origin.Before(base.AddDate(0, 0, 38)) {
			t.Fatalf("explanation %s after origin %v", body, last)
		}
		if answers == 0 {
			first = r.Origin
		}
		last = r.Origin
		answers++
	}
	select {
	case err := <-produced:
		t.Fatalf("producing more days: %v", err)
	default:
	}
	t.Logf("%d explanations, origins %v to %v", answers, first, last)
	if !last.After(first) {
		t.Errorf("every explanation at origin %v: none was served while the partition processed", first)
	}
}
