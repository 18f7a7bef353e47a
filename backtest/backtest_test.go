package backtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/internal/schematest"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/stream"
)

// writeM5 writes a synthetic M5-format directory: series items of store
// TX_1 with intermittent weekly-seasonal sales, some starting late, train
// days then 28 test days. scale multiplies the sales of days from
// perturbFrom (1-based) on, to test that forecasts never peek ahead.
func writeM5(t testing.TB, dir string, series, train int, perturbFrom int, scale float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(42, 42))
	m := &source.M5{Train: train, FirstDay: source.DefaultM5Start}
	for s := range series {
		m.IDs = append(m.IDs, fmt.Sprintf("TX_1/FOODS_3_%03d", s+1))
		start := 0
		if s%4 == 3 {
			start = 20 + r.IntN(train/2)
		}
		rate := 0.3 + 4*r.Float64()
		row := make([]float64, train+28)
		for d := range row {
			if d >= start {
				row[d] = float64(poissonTest(r, rate*(1+0.5*float64(((d+1)%7)/5))))
			}
			if perturbFrom > 0 && d+1 >= perturbFrom {
				row[d] *= scale
			}
		}
		m.Sales = append(m.Sales, row)
	}
	if err := source.WriteM5(dir, m); err != nil {
		t.Fatal(err)
	}
}

func poissonTest(r *rand.Rand, mean float64) int {
	k, p, l := 0, 1.0, math.Exp(-mean)
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func readM5(t testing.TB, dir string) *source.M5 {
	t.Helper()
	m, err := source.ReadM5(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func backtestM5(t testing.TB, m *source.M5, partitions int) *Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Origin, cfg.Partitions, cfg.Rolling = m.Date(m.Train-1), partitions, 30
	res, err := Run(context.Background(), cfg, m.Events())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestBacktestSourcesAgree replays the same history from an M5 directory,
// from the equivalent events file, and from a topic filled by Produce, with
// the same partition count, and expects identical scores.
func TestBacktestSourcesAgree(t *testing.T) {
	dir := t.TempDir()
	writeM5(t, dir, 24, 120, 0, 1)
	m := readM5(t, dir)
	const partitions = 3
	fromM5 := backtestM5(t, m, partitions)

	var lines strings.Builder
	src := m.Events()
	for {
		r, err := src.Next()
		if err != nil {
			break
		}
		lines.Write(r.Value)
		lines.WriteByte('\n')
	}
	path := filepath.Join(dir, "events.jsonl")
	os.WriteFile(path, []byte(lines.String()), 0o644)
	f, err := source.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := DefaultConfig()
	cfg.Origin, cfg.Partitions, cfg.Rolling = m.Date(m.Train-1), partitions, 30
	fromEvents, err := Run(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}

	brokers := kafkatest.NewCluster(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := &stream.Connection{Brokers: brokers}
	if _, err := stream.Produce(ctx, stream.ProduceConfig{Connection: *conn, Topic: "history", Partitions: partitions}, m.Events()); err != nil {
		t.Fatal(err)
	}
	fromTopic, err := RunTopic(ctx, cfg, conn, "history", TopicRange{})
	if err != nil {
		t.Fatal(err)
	}

	if fromM5.Records == 0 || fromM5.Fixed["tsb"].SeriesScored == 0 {
		t.Fatalf("nothing scored: %+v", fromM5.Fixed["tsb"])
	}
	for name, res := range map[string]*Result{"events": fromEvents, "topic": fromTopic} {
		if !reflect.DeepEqual(res.Fixed, fromM5.Fixed) || !reflect.DeepEqual(res.Rolling, fromM5.Rolling) {
			t.Errorf("%s source scores differ from the M5 source:\n%+v\n%+v", name, res.Fixed["tsb"], fromM5.Fixed["tsb"])
		}
		if res.Records != fromM5.Records || res.Series != fromM5.Series || res.Buckets != fromM5.Buckets {
			t.Errorf("%s source: %d records %d series %d buckets, M5 %d %d %d", name,
				res.Records, res.Series, res.Buckets, fromM5.Records, fromM5.Series, fromM5.Buckets)
		}
	}
}

// TestBacktestNoPeeking changes every sale after the fixed origin and
// expects the forecasts made at the origin to stay identical, while the
// scores change.
func TestBacktestNoPeeking(t *testing.T) {
	base, perturbed := t.TempDir(), t.TempDir()
	writeM5(t, base, 16, 100, 0, 1)
	writeM5(t, perturbed, 16, 100, 101, 3)
	a := backtestM5(t, readM5(t, base), 2)
	b := backtestM5(t, readM5(t, perturbed), 2)
	if len(a.Traces) == 0 || len(a.Traces) != len(b.Traces) {
		t.Fatalf("%d and %d traces", len(a.Traces), len(b.Traces))
	}
	for i := range a.Traces {
		ta, tb := a.Traces[i], b.Traces[i]
		if !reflect.DeepEqual(ta.History, tb.History) || !reflect.DeepEqual(ta.Forecasts, tb.Forecasts) {
			t.Errorf("%s: the forecast at the origin changed when only later data did", ta.Series)
		}
		if reflect.DeepEqual(ta.Actual, tb.Actual) && sum(ta.Actual) > 0 {
			t.Errorf("%s: the perturbation did not reach the actuals", ta.Series)
		}
	}
	if reflect.DeepEqual(a.Fixed, b.Fixed) {
		t.Error("scores did not change with the actuals")
	}
}

func sum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// TestBacktestReplayRules checks the protocol's replay rules on the traces:
// a series starts at its first sale, days without an event are zeros, and
// the actuals after the origin are the test days.
func TestBacktestReplayRules(t *testing.T) {
	dir := t.TempDir()
	writeM5(t, dir, 12, 90, 0, 1)
	m := readM5(t, dir)
	res := backtestM5(t, m, 1)
	again := backtestM5(t, m, 1)
	if !reflect.DeepEqual(res.Fixed, again.Fixed) || !reflect.DeepEqual(res.Traces, again.Traces) {
		t.Error("two runs over the same data differ")
	}
	if res.Series != 12 || res.Buckets != 90+28 {
		t.Errorf("%d series over %d buckets, want 12 over 118", res.Series, res.Buckets)
	}
	for _, tr := range res.Traces {
		var row []float64
		for i, id := range m.IDs {
			if id == tr.Series {
				row = m.Sales[i]
			}
		}
		first := 0
		for row[first] == 0 {
			first++
		}
		want := row[max(first, m.Train-56):m.Train]
		if !reflect.DeepEqual(tr.History, want) {
			t.Errorf("%s history %v, want %v (from its first sale on day %d)", tr.Series, tr.History, want, first+1)
		}
		if !reflect.DeepEqual(tr.Actual, row[m.Train:]) {
			t.Errorf("%s actuals %v, want the test days %v", tr.Series, tr.Actual, row[m.Train:])
		}
	}
}

// TestBacktestPublish sends the published forecasts of a backtest to a
// topic: one schema-valid record per series and close.
func TestBacktestPublish(t *testing.T) {
	dir := t.TempDir()
	writeM5(t, dir, 4, 40, 0, 1)
	m := readM5(t, dir)
	brokers := kafkatest.NewCluster(t, 2, "bt.forecasts")
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "bt.forecasts", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	cfg := DefaultConfig()
	cfg.Origin, cfg.Rolling, cfg.PublishTo = m.Date(m.Train-1), 5, w
	res, err := Run(context.Background(), cfg, m.Events())
	if err != nil {
		t.Fatal(err)
	}
	if res.Forecasts == 0 {
		t.Fatal("no forecasts made")
	}
	got := kafkatest.ReadTopic(t, brokers, "bt.forecasts", int(res.Forecasts), 20*time.Second, 20*time.Second)
	if int64(len(got)) != res.Forecasts {
		t.Fatalf("%d forecasts published, %d made", len(got), res.Forecasts)
	}
	for _, msg := range got[:10] {
		if err := schematest.Validate(t, "forecast", msg.Value); err != nil {
			t.Fatalf("published forecast breaks the schema: %v", err)
		}
	}
}

// TestBacktestTopicRange produces two runs of events a moment apart and
// replays the topic whole, from the second run's start and up to it: each
// range must see exactly its records.
func TestBacktestTopicRange(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := &stream.Connection{Brokers: brokers}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	produce := func(seed uint64, from time.Time) int64 {
		t.Helper()
		gen, err := source.NewSynthetic(source.SynthConfig{Stores: 1, SKUs: 3, Days: 10, Seed: seed, Start: from})
		if err != nil {
			t.Fatal(err)
		}
		n, err := stream.Produce(ctx, stream.ProduceConfig{Connection: *conn, Topic: "history", Partitions: 2}, gen)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := produce(1, start)
	time.Sleep(20 * time.Millisecond)
	between := time.Now()
	time.Sleep(20 * time.Millisecond)
	second := produce(2, start.AddDate(0, 0, 10))

	cfg := DefaultConfig()
	cfg.Origin, cfg.Partitions, cfg.Rolling, cfg.Published = start.AddDate(0, 0, 14), 2, 3, "tsb"
	for _, tc := range []struct {
		name string
		rng  TopicRange
		want int64
	}{
		{"whole topic", TopicRange{}, first + second},
		{"from", TopicRange{From: between}, second},
		{"to", TopicRange{To: between}, first},
		{"from and to", TopicRange{From: start, To: between}, first},
		{"after the end", TopicRange{From: time.Now().Add(time.Hour)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := RunTopic(ctx, cfg, conn, "history", tc.rng)
			if err != nil {
				t.Fatal(err)
			}
			if res.Records != tc.want {
				t.Errorf("replayed %d records, want %d", res.Records, tc.want)
			}
		})
	}
	if _, err := RunTopic(ctx, cfg, conn, "history", TopicRange{From: between, To: between}); err == nil {
		t.Error("an empty range was accepted")
	}
}
