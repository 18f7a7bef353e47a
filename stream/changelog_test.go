package stream

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

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
	var prefix []kafka.Message
	for _, b := range commits[:len(commits)-1] {
		prefix = append(prefix, cl.messages(nil, b)...)
	}
	last := cl.messages(nil, commits[len(commits)-1])

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
