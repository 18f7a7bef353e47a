package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/internal/schematest"
)

// createTopic creates a one-partition topic with the given configuration.
func createTopic(t *testing.T, brokers []string, topic string, configs map[string]string) {
	t.Helper()
	var entries []kafka.ConfigEntry
	for k, v := range configs {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	client := (&Connection{Brokers: brokers}).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: entries}}})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
}

// headerMap returns a dead letter's headers as a JSON object, the form
// schema/dead-letter.schema.json describes.
func headerMap(t *testing.T, m kafka.Message) []byte {
	t.Helper()
	h := map[string]string{}
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPoisonPills feeds records that the input topic accepts but whose
// outputs the brokers refuse, each followed by a valid event, and checks
// that the partition moves on: the valid event is counted, the refused
// dead letter is replaced by its bounded form (a prefix or only headers,
// with the original's size, digest and source), and a refused forecast is
// dropped and counted. Before, every write failed and the task retried
// forever.
func TestPoisonPills(t *testing.T) {
	huge := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 950_000)...)
	huge = append(huge, `"}`...)
	// Random letters, which the output's compression cannot shrink below
	// the topic's limit.
	broken := []byte(`{not json `)
	letters := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		broken = append(broken, byte('a'+letters.IntN(26)))
	}
	good := testEvent{ID: "ok", Store: "s", SKU: "k", TS: ts(0, 10), Qty: 2}.message()
	closing := testEvent{ID: "next", Store: "s", SKU: "k", TS: ts(1, 10), Qty: 1}.message()
	for _, tc := range []struct {
		name   string
		topics map[string]map[string]string // topics created first, with configs
		input  []byte
		reason string
		// keep is the length of the value the dead letter keeps.
		keep      int
		forecasts int // forecasts written
		refused   float64
	}{
		// The value exceeds what kafka-go's writer sends in one batch:
		// it refuses the dead letter before sending it.
		{name: "oversized for the writer", input: huge, reason: "oversized", keep: DefaultConfig().DLQMaxBytes, forecasts: 1},
		// The dead-letter topic refuses records above 1,500 bytes: the
		// dead letter goes without key and value.
		{name: "refused by the topic", topics: map[string]map[string]string{"sales.dlq": {"max.message.bytes": "1500"}},
			input: broken, reason: "invalid_json", keep: 0, forecasts: 1},
		// The forecast topic refuses every forecast: they are dropped and
		// counted, the dead letter still goes out.
		{name: "forecasts refused", topics: map[string]map[string]string{"forecasts": {"max.message.bytes": "200"}},
			input: broken, reason: "invalid_json", keep: len(broken), refused: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := kafkatest.NewCluster(t, 1)
			createTopic(t, brokers, "sales", map[string]string{"max.message.bytes": "2000000"})
			for topic, cfg := range tc.topics {
				createTopic(t, brokers, topic, cfg)
			}
			poison := kafka.Message{Key: []byte("s/k"), Value: tc.input}
			w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", BatchBytes: 2_000_000, RequiredAcks: kafka.RequireAll}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := w.WriteMessages(ctx, poison, good, closing); err != nil {
				t.Fatal(err)
			}
			w.Close()

			cfg := testConfig(brokers)
			cfg.Partitions = 1
			cfg.Registerer = prometheus.NewRegistry()
			rp := startProcessor(t, cfg, t.TempDir())
			defer rp.stop(t)
			waitFor(t, 30*time.Second, "every record consumed", func() bool {
				return testutilCounter(rp.p.m.consumed) == 3 && testutilCounter(rp.p.m.batches) > 0
			})
			if n := testutilCounter(rp.p.m.accepted); n != 2 {
				t.Errorf("%v events accepted, want 2", n)
			}
			dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 1, 5*time.Second, 20*time.Second)
			if len(dlq) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dlq))
			}
			m := dlq[0]
			if err := schematest.Validate(t, "dead-letter", headerMap(t, m)); err != nil {
				t.Errorf("dead-letter headers break schema/dead-letter.schema.json: %v\n%s", err, headerMap(t, m))
			}
			if got := header(m, "reason"); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			if got := header(m, "source"); got != "sales/0/0" {
				t.Errorf("source %q, want sales/0/0", got)
			}
			if len(m.Value) != tc.keep || !bytes.HasPrefix(tc.input, m.Value) {
				t.Errorf("dead letter keeps %d bytes, want the first %d of the record", len(m.Value), tc.keep)
			}
			sum := sha256.Sum256(tc.input)
			if cut := tc.keep < len(tc.input); cut {
				if header(m, "truncated") != "true" || header(m, "original-value-sha256") != hex.EncodeToString(sum[:]) ||
					header(m, "original-value-bytes") != strconv.Itoa(len(tc.input)) {
					t.Errorf("a cut dead letter lacks the original's size and digest: %s", headerMap(t, m))
				}
				if n := testutilCounter(rp.p.m.dlqTruncated); n != 1 {
					t.Errorf("dlq_truncated_total %v, want 1", n)
				}
			} else if header(m, "truncated") != "" {
				t.Errorf("an intact dead letter says it was cut: %s", headerMap(t, m))
			}
			if got := kafkatest.ReadTopic(t, brokers, "forecasts", tc.forecasts, time.Second, 10*time.Second); len(got) != tc.forecasts {
				t.Errorf("%d forecasts, want %d", len(got), tc.forecasts)
			}
			if n := testutilCounter(rp.p.m.outputRefused.WithLabelValues("forecast")); n != tc.refused {
				t.Errorf("%v forecasts refused, want %v", n, tc.refused)
			}
		})
	}
}

// TestWriteFailures checks how a failed write's messages are sorted: the
// ones the brokers refuse for themselves are isolated, the others retried,
// the written ones dropped from the retry.
func TestWriteFailures(t *testing.T) {
	msgs := []kafka.Message{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
	for _, tc := range []struct {
		name           string
		err            error
		retry, refused string
	}{
		{"writer refuses one as too large", kafka.MessageTooLargeError{Message: msgs[1], Remaining: []kafka.Message{msgs[0], msgs[2]}}, "ac", "b"},
		{"broker refuses a batch", kafka.WriteErrors{nil, kafka.MessageSizeTooLarge, kafka.InvalidRecord}, "", "bc"},
		{"leader moved", kafka.WriteErrors{kafka.NotLeaderForPartition, nil, kafka.MessageSizeTooLarge}, "a", "c"},
		{"not authorized", kafka.WriteErrors{kafka.TopicAuthorizationFailed, nil, nil}, "a", ""},
		{"network down", errors.New("dial tcp: connection refused"), "abc", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry, refused := failedOutputs(msgs, tc.err)
			values := func(ms []kafka.Message) (s string) {
				for _, m := range ms {
					s += string(m.Value)
				}
				return s
			}
			if values(retry) != tc.retry || values(refused) != tc.refused {
				t.Errorf("retry %q, refused %q; want %q, %q", values(retry), values(refused), tc.retry, tc.refused)
			}
		})
	}
}
