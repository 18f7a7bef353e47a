package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// nopSink is an engine sink that keeps nothing.
type nopSink struct{}

var _ pipeline.Sink = nopSink{}

func (nopSink) DeadLetter(*pipeline.Record, pipeline.Reason, string) error { return nil }
func (nopSink) Wants(int64) bool                                           { return false }
func (nopSink) Closed(*pipeline.Close) error                               { return nil }

// engineCommits runs days of events for a few series through an engine of
// partition 0 and returns the state batch of each commit: one per day.
func engineCommits(t testing.TB, days int) []*state.Batch {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	cfg.Published, cfg.Limits.MaxFuture = "tsb", -1
	e, err := pipeline.NewEngine(cfg, nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	var commits []*state.Batch
	off := int64(0)
	for d := range days {
		e.BeginBatch()
		first := off
		for _, sku := range []string{"a", "b", "c"} {
			ev := testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: float64(1 + d%3)}.message()
			if err := e.Process(&pipeline.Record{Offset: off, Key: ev.Key, Value: ev.Value}); err != nil {
				t.Fatal(err)
			}
			off++
		}
		b := new(state.Batch)
		if err := e.AppendState(b, 0, first, off, d == days-1); err != nil {
			t.Fatal(err)
		}
		commits = append(commits, b)
	}
	return commits
}

// fakeCluster starts a kfake cluster of n brokers, closed when the test
// ends, whose input topic "sales" and automatically created topics have
// one partition per broker and whose groups accept sessions from 250 ms.
func fakeCluster(t testing.TB, n int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(n),
		kfake.SeedTopics(int32(n), "sales"), kfake.GroupMinSessionTimeout(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// committed returns a condition: partition 0 of db has committed up to
// next.
func committed(db *state.DB, next int64) func() bool {
	return func() bool {
		got, err := pipeline.LocalOffset(db, 0)
		return err == nil && got == next
	}
}

// partitionState returns partition p's keys and values in db, without
// the restore position, which only a restore writes.
func partitionState(t testing.TB, db *state.DB, p int32) map[string]string {
	t.Helper()
	out := map[string]string{}
	skip := string(pipeline.RestorePositionKey(nil, p))
	err := db.Scan(pipeline.PartitionPrefix(nil, p), func(k, v []byte) error {
		if string(k) != skip {
			out[string(k)] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func memDB(t testing.TB) *state.DB {
	t.Helper()
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// diskDB opens a store in a temporary directory: an in-memory one takes
// no value over 64 KiB.
func diskDB(t testing.TB) *state.DB {
	t.Helper()
	db, err := state.Open(state.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func writeChangelog(t testing.TB, brokers []string, topic string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(keyPartition), AllowAutoTopicCreation: true}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAppliesWholeCommits cuts the changelog after every record of
// a commit, as a crash while writing it does, and restores from it: the
// restored partition must hold exactly the previous commit's state until
// the cut includes the whole commit, then the new one. It runs with the
// default staging bound and with one so small that every record
// overflows it.
func TestRestoreAppliesWholeCommits(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 1)
	commits := engineCommits(t, 4)
	cl := newChangelog(Connection{Brokers: brokers}, "", time.Hour, slog.New(slog.DiscardHandler), newMetrics(nil))
	messages := func(b *state.Batch) []kafka.Message {
		records, marker, err := cl.messages(nil, 0, b, 1, memDB(t))
		if err != nil {
			t.Fatal(err)
		}
		return append(records, marker)
	}
	var prefix []kafka.Message
	for _, b := range commits[:len(commits)-1] {
		prefix = append(prefix, messages(b)...)
	}
	last := messages(commits[len(commits)-1])

	refs := make([]map[string]string, 2)
	ref := memDB(t)
	for i, b := range commits {
		if _, err := ref.Commit(b); err != nil {
			t.Fatal(err)
		}
		if i >= len(commits)-2 {
			refs[i-len(commits)+2] = partitionState(t, ref, 0)
		}
	}

	for _, limit := range []int{stageLimit, 1} {
		for cut := range len(last) + 1 {
			t.Run(fmt.Sprintf("limit %d cut %d of %d", limit, cut, len(last)), func(t *testing.T) {
				t.Parallel()
				topic := fmt.Sprintf("changelog-%d-%d", limit, cut)
				writeChangelog(t, brokers, topic, append(append([]kafka.Message(nil), prefix...), last[:cut]...))
				c := newChangelog(Connection{Brokers: brokers}, topic, time.Hour, slog.New(slog.DiscardHandler), newMetrics(nil))
				c.stageLimit = limit
				db := memDB(t)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := c.restore(ctx, db, 0, -1, false); err != nil {
					t.Fatal(err)
				}
				want := refs[0]
				if cut == len(last) {
					want = refs[1]
				}
				got := partitionState(t, db, 0)
				if !maps.Equal(got, want) {
					for k, v := range got {
						if w, ok := want[k]; !ok || w != v {
							t.Errorf("restored key %x = %x, want %x (present %v)", k, v, w, ok)
						}
					}
					for k := range want {
						if _, ok := got[k]; !ok {
							t.Errorf("restored state lacks key %x", k)
						}
					}
				}
				e, err := pipeline.NewEngine(func() pipeline.Config {
					cfg := pipeline.DefaultConfig()
					cfg.Published = "tsb"
					return cfg
				}(), nopSink{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Load(db, 0); err != nil {
					t.Errorf("loading the restored partition: %v", err)
				}
			})
		}
	}
}

// produces reports whether req is a produce request to topic carrying a
// record with the given key. It decodes uncompressed batches only, as
// kafka-go writes them by default.
func produces(req kmsg.Request, topic string, key []byte) bool {
	pr, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		return false
	}
	for _, t := range pr.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			var batch kmsg.RecordBatch
			if batch.ReadFrom(p.Records) != nil {
				continue
			}
			recs := batch.Records
			for range batch.NumRecords {
				rec := kmsg.NewRecord()
				if rec.ReadFrom(recs) != nil {
					break
				}
				if bytes.Equal(rec.Key, key) {
					return true
				}
				n, size := binary.Varint(recs)
				recs = recs[n+int64(size):]
			}
		}
	}
	return false
}

// TestMarkerFollowsAckedRecords makes the broker refuse, for good, every
// changelog produce request that does not carry a commit point while a
// commit is written: kafka-go's writer gives up on the refused batch and
// still writes the later ones. A restore must then hold the last whole
// commit, never the commit point with records of its commit missing; once
// the broker accepts again, the commit completes.
func TestMarkerFollowsAckedRecords(t *testing.T) {
	c := fakeCluster(t, 1)
	brokers := c.ListenAddrs()
	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	days := func(from, to int) []kafka.Message { return dayEvents([]string{"a", "b", "c", "d"}, from, to) }
	rp := startProcessor(t, cfg, t.TempDir(), func(p *Processor) {
		p.changelog.w.BatchSize = 5 // a commit spans several produce requests
	})
	defer rp.stop(t)
	db := rp.db
	restored := func() map[string]string {
		t.Helper()
		into := memDB(t)
		c := newChangelog(Connection{Brokers: brokers}, "test.changelog", time.Hour, slog.New(slog.DiscardHandler), newMetrics(nil))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.restore(ctx, into, 0, -1, false); err != nil {
			t.Fatal(err)
		}
		return partitionState(t, into, 0)
	}
	produce(t, brokers, "sales", days(0, 10)...)
	waitFor(t, 30*time.Second, "days 0-9 committed", committed(db, 40))

	marker := pipeline.CommitPointKey(nil, 0)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "test.changelog", Count: -1, Err: kerr.InvalidRecord,
		When: func(req kmsg.Request) bool { return !produces(req, "test.changelog", marker) }})
	produce(t, brokers, "sales", days(10, 11)...)
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := fault.Wait(wctx, 4); err != nil { // the commit's write, then its retry, were refused
		t.Fatal(err)
	}
	if got, want := restored(), partitionState(t, db, 0); !maps.Equal(got, want) {
		t.Errorf("with a commit's records refused, a restore holds %d keys differing from the last whole commit's %d", len(got), len(want))
	}

	fault.Remove()
	waitFor(t, 30*time.Second, "day 10 committed", committed(db, 44))
	if got, want := restored(), partitionState(t, db, 0); !maps.Equal(got, want) {
		t.Errorf("after the broker accepted the commit, a restore holds %d keys differing from the store's %d", len(got), len(want))
	}
}

// untilDescriptor returns the records of a commit before its first chunk
// descriptor: a writer stopped after writing a value's chunks.
func untilDescriptor(m []kafka.Message) []kafka.Message {
	for i, r := range m {
		if header(r, chunkedHeader) != "" {
			return m[:i]
		}
	}
	return m
}

// TestChunkedValueSurvivesCompaction writes a value larger than a
// changelog record (a learner checkpoint) in three commits, the last of
// them cut or damaged, then compacts the changelog: a restore must give
// the last whole value or, when compaction has removed it, none (the
// learner starts afresh) — never an error or a mix of chunks. A whole
// last commit leaves only its own chunks after compaction.
func TestChunkedValueSurvivesCompaction(t *testing.T) {
	c := fakeCluster(t, 1)
	brokers := c.ListenAddrs()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	key := pipeline.ForecastKey(nil, 0, "model")
	point := pipeline.CommitPointKey(nil, 0)
	values := make([][]byte, 3)
	for i := range values {
		values[i] = bytes.Repeat([]byte{byte('a' + i)}, 2*chunkSize+100)
	}
	isChunk := func(m kafka.Message) bool { return bytes.Contains(m.Key, chunkSuffix) }
	for _, tc := range []struct {
		name string
		// last edits the records of the third commit, its marker last.
		last  func([]kafka.Message) []kafka.Message
		first bool // only the first commit's chunks were written
		want  [][]byte
	}{
		{"whole", func(m []kafka.Message) []kafka.Message { return m }, false, [][]byte{values[2]}},
		{"cut after the chunks", untilDescriptor, false, [][]byte{values[1]}},
		{"a chunk lost", func(m []kafka.Message) []kafka.Message {
			for i, r := range m {
				if isChunk(r) {
					return append(m[:i:i], m[i+1:]...)
				}
			}
			return m
		}, false, [][]byte{values[1], nil}},
		{"first value cut after its chunks", nil, true, [][]byte{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "chunks-" + strings.ReplaceAll(tc.name, " ", "-")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic,
				NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}}}}); err != nil {
				t.Fatal(err)
			}
			cl := newChangelog(Connection{Brokers: brokers}, topic, time.Hour, slog.New(slog.DiscardHandler), newMetrics(nil))
			prev := diskDB(t) // the writer's store, before each commit
			commit := func(i int, value []byte) []kafka.Message {
				var b state.Batch
				if value != nil {
					b.Set(key, value)
				}
				b.SetFinal(point, binary.AppendVarint([]byte{1}, int64(i+1)), 0)
				records, marker, err := cl.messages(nil, 0, &b, 1, prev)
				if err != nil {
					t.Fatal(err)
				}
				out := append(append([]kafka.Message(nil), records...), marker)
				if _, err := prev.Commit(&b); err != nil {
					t.Fatal(err)
				}
				return out
			}
			var log []kafka.Message
			if tc.first {
				log = untilDescriptor(commit(0, values[0]))
			} else {
				log = append(append(log, commit(0, values[0])...), commit(1, values[1])...)
				log = append(log, tc.last(commit(2, values[2]))...)
			}
			writeChangelog(t, brokers, topic, log)
			// A later commit, in a batch of its own: kfake never compacts
			// a partition's last batch.
			writeChangelog(t, brokers, topic, commit(3, nil))
			c.Compact()

			db := diskDB(t)
			if _, err := cl.restore(ctx, db, 0, -1, false); err != nil {
				t.Fatalf("restore: %v", err)
			}
			var got []byte
			if _, err := db.Get(key, func(v []byte) error { got = bytes.Clone(v); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(tc.want, func(w []byte) bool { return bytes.Equal(got, w) }) {
				t.Errorf("restored a value of %d bytes starting %q, want one of the %d allowed", len(got), got[:min(len(got), 4)], len(tc.want))
			}
			if tc.name == "whole" {
				chunks := 0
				for _, m := range kafkatest.ReadTopic(t, brokers, topic, 0, time.Second, 10*time.Second) {
					if isChunk(m) && len(m.Value) > 0 {
						chunks++
					}
				}
				if chunks != 3 {
					t.Errorf("the compacted changelog holds %d chunk records, want the last value's 3", chunks)
				}
			}
		})
	}
}

// TestTopicSetup checks the topics a processor creates and the changelog
// it finds: created topics get the brokers' default replication factor
// unless one is set, and an existing changelog that is not compacted, or
// not co-partitioned with the input, stops the processor with an error
// naming the topic and the fix.
func TestTopicSetup(t *testing.T) {
	c := fakeCluster(t, 3)
	brokers := c.ListenAddrs()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name        string
		replication int
		existing    *kafka.TopicConfig // the changelog, made before the processor starts
		err         string             // in Run's error; "" for a processor that starts
		replicas    int
	}{
		{name: "brokers' default", replicas: 3},
		{name: "set", replication: 2, replicas: 2},
		{name: "not compacted", existing: &kafka.TopicConfig{NumPartitions: 3, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "delete"}}},
			err: `changelog topic "not-compacted.changelog" has cleanup.policy "delete"`},
		{name: "not co-partitioned", existing: &kafka.TopicConfig{NumPartitions: 2, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}},
			err: `changelog topic "not-co-partitioned.changelog" has 2 partitions and the input topic "sales" 3`},
		{name: "compacted and deleted", replicas: 3, existing: &kafka.TopicConfig{NumPartitions: 3, ReplicationFactor: 1,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact,delete"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := strings.ReplaceAll(tc.name, " ", "-")
			group = strings.ReplaceAll(group, "'", "")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.existing != nil {
				tc.existing.Topic = group + ".changelog"
				if _, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{*tc.existing}}); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(brokers)
			cfg.Group, cfg.ReplicationFactor = group, tc.replication
			cfg.OutputTopic, cfg.DLQTopic = group+".forecasts", group+".dlq"
			db := memDB(t)
			p, err := New(cfg, db)
			if err != nil {
				t.Fatal(err)
			}
			if tc.err != "" {
				if err := p.Run(ctx); err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Run = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(rctx) }()
			waitFor(t, 20*time.Second, "readiness", p.Ready)
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// A client of its own: a kafka-go transport caches metadata.
			fresh := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: &kafka.Transport{}}
			meta, err := fresh.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.OutputTopic, cfg.DLQTopic, group + ".changelog"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, topic := range meta.Topics {
				if topic.Error != nil || len(topic.Partitions) != 3 {
					t.Fatalf("topic %s: %v, %d partitions", topic.Name, topic.Error, len(topic.Partitions))
				}
				if tc.existing != nil && topic.Name == tc.existing.Topic {
					continue
				}
				if n := len(topic.Partitions[0].Replicas); n != tc.replicas {
					t.Errorf("topic %s has %d replicas, want %d", topic.Name, n, tc.replicas)
				}
			}
		})
	}
}
