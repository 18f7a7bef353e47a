package stream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// startModels returns a models instance on the brokers whose follower runs
// until the returned stop.
func startModels(t *testing.T, brokers []string) (*models, func()) {
	t.Helper()
	conn := &Connection{Brokers: brokers}
	ms := newModels(conn, "g.models", slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if err := ms.ensure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { ms.follow(ctx) })
	return ms, func() { cancel(); wg.Wait(); ms.close() }
}

// mixDays returns days of daily records of 4 series of partition p.
func mixDays(p, days int) [][]pipeline.Record {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	out := make([][]pipeline.Record, days)
	off := 0
	for d := range days {
		for i := range 4 {
			ts := start.Add(time.Duration(d)*24*time.Hour + time.Duration(8+i)*time.Hour)
			out[d] = append(out[d], pipeline.Record{Offset: int64(off), Key: fmt.Appendf(nil, "s%d/k%d", p, i),
				Value: fmt.Appendf(nil, `{"event_id":"p%de%d","store":"s%d","sku":"k%d","ts":"%s","qty":%d}`,
					p, off, p, i, ts.Format(time.RFC3339), 1+(d*(i+p+1))%5)})
			off++
		}
	}
	return out
}

// mixingEngine returns partition p's engine with a small LSTM mixing
// every bucket through mx.
func mixingEngine(t *testing.T, mx pipeline.Mixer, p int32) *pipeline.Engine {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	cfg.Published = model.NameLSTM
	cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 14
	e, err := pipeline.NewEngine(cfg, nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetMixer(mx, p, pipeline.MixConfig{Every: 1}); err != nil {
		t.Fatal(err)
	}
	return e
}

func feedDay(t *testing.T, e *pipeline.Engine, recs []pipeline.Record) {
	t.Helper()
	e.BeginBatch()
	for i := range recs {
		if err := e.Process(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
}

// commitState returns the commit of e's state as partition 0 and its LSTM
// checkpoint in it.
func commitState(t *testing.T, e *pipeline.Engine, first, next int64) (*state.Batch, []byte) {
	t.Helper()
	b := &state.Batch{}
	if err := e.AppendState(b, 0, first, next, false); err != nil {
		t.Fatal(err)
	}
	ckKey := append(append(pipeline.PartitionPrefix(nil, 0), 'x'), model.NameLSTM...)
	var ck []byte
	b.Each(func(k, v []byte, _ time.Duration) {
		if bytes.Equal(k, ckKey) {
			ck = bytes.Clone(v)
		}
	})
	return b, ck
}

// TestModelsCrashReplay runs two partitions mixing through the models
// topic on kfake. Partition 0 is killed after publishing a round but
// before committing it, while partition 1 publishes further rounds; a new
// instance (a new follower of the topic) loads partition 0 from its last
// commit and replays the round: it must mix the same peer snapshots and
// end at the same weights, then keep mixing from there, as a partition
// moved to another instance does.
func TestModelsCrashReplay(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 1)
	const days, crash = 44, 40
	ra, rb := mixDays(0, days), mixDays(1, days)

	ms, stop := startModels(t, brokers)
	ctx := context.Background()
	a, b := mixingEngine(t, ms.forTask(ctx, 0), 0), mixingEngine(t, ms.forTask(ctx, 1), 1)
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for d := range crash {
		feedDay(t, a, ra[d])
		feedDay(t, b, rb[d])
		batch, _ := commitState(t, a, int64(d), int64(d+1))
		if _, err := db.Commit(batch); err != nil {
			t.Fatal(err)
		}
	}
	if a.Learned().Steps == 0 || a.Mixing().Rounds == 0 {
		t.Fatalf("partition 0 took %d steps and mixed %d rounds before the crash", a.Learned().Steps, a.Mixing().Rounds)
	}
	feedDay(t, a, ra[crash]) // publishes and mixes a round ...
	_, want := commitState(t, a, crash, crash+1)
	// ... and dies before the commit, while partition 1 goes on.
	for d := crash; d < days; d++ {
		feedDay(t, b, rb[d])
	}
	stop()

	ms2, stop2 := startModels(t, brokers)
	defer stop2()
	a2 := mixingEngine(t, ms2.forTask(ctx, 0), 0)
	if _, err := a2.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	feedDay(t, a2, ra[crash])
	_, got := commitState(t, a2, crash, crash+1)
	if want == nil || !bytes.Equal(got, want) {
		t.Fatal("the replayed round ended at other weights than the round before the crash")
	}
	if ms2.stats.replayed != 1 || ms2.stats.missing != 0 {
		t.Errorf("replayed %d rounds, missing %d peers; want 1 and 0", ms2.stats.replayed, ms2.stats.missing)
	}
	// The partition keeps mixing on the new instance, from its checkpoint.
	_, round, _ := a2.MixedPeers(0)
	for d := crash + 1; d < days; d++ {
		feedDay(t, a2, ra[d])
	}
	peers, next, ok := a2.MixedPeers(0)
	if !ok || next != round+days-crash-1 || len(peers) != 1 || peers[0].Partition != 1 {
		t.Errorf("after the replay partition 0 mixed %v at round %d, want partition 1's at round %d", peers, next, round+days-crash-1)
	}
	if ms2.stats.published != days-crash-1 {
		t.Errorf("the new instance published %d rounds, want %d", ms2.stats.published, days-crash-1)
	}
}

// modelRounds returns, per key of the models topic's records, the rounds
// in order and the learner's steps at the last.
func modelRounds(t *testing.T, msgs []kafka.Message) (map[string][]int64, map[string]int64) {
	t.Helper()
	rounds, steps := map[string][]int64{}, map[string]int64{}
	for _, m := range msgs {
		var s model.Snapshot
		if err := s.UnmarshalBinary(m.Value); err != nil {
			t.Fatal(err)
		}
		rounds[string(m.Key)] = append(rounds[string(m.Key)], s.Round)
		steps[string(m.Key)] = s.Version
	}
	return rounds, steps
}

// TestProcessorMixing runs a processor over two input partitions with
// mixing on (the default): each partition publishes a snapshot at every
// close to the models topic and mixes the other's. Then the partitions
// move to a second instance with an empty store mid-stream: restored from
// the changelog, each learner continues from its checkpoint (its step
// count goes on) and keeps mixing, with rounds that continue where the
// first instance's stopped.
func TestProcessorMixing(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 2, "sales")
	cfg := testConfig(brokers)
	smallLSTM(&cfg)
	day := func(d int) []kafka.Message {
		var msgs []kafka.Message
		for i := range 12 {
			sku := fmt.Sprint("k", i)
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s-%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: float64(1 + (d+i)%4)}.message())
		}
		return msgs
	}
	var first []kafka.Message
	for d := range 20 {
		first = append(first, day(d)...)
	}
	produce(t, brokers, "sales", first...)
	a := startProcessor(t, cfg, t.TempDir())
	// Buckets 0 to 18 close: a round per close and partition.
	before := kafkatest.ReadTopic(t, brokers, "test.models", 2*19, 2*time.Second, 60*time.Second)
	a.stop(t)
	rounds, steps := modelRounds(t, before)
	if len(rounds) != 2 || len(rounds["0/lstm"]) != 19 || len(rounds["1/lstm"]) != 19 {
		t.Fatalf("the first instance published rounds %v, want 19 for each of 2 partitions", rounds)
	}

	cfg.StartOffset = StartLatest // only the changelog can bring the state
	b := startProcessor(t, cfg, t.TempDir())
	defer b.stop(t)
	var second []kafka.Message
	for d := 20; d < 30; d++ {
		second = append(second, day(d)...)
	}
	produce(t, brokers, "sales", second...)
	all := kafkatest.ReadTopic(t, brokers, "test.models", 2*29, 2*time.Second, 60*time.Second)
	after, _ := modelRounds(t, all[len(before):])
	for _, k := range []string{"0/lstm", "1/lstm"} {
		r := after[k]
		if len(r) != 10 || r[0] != rounds[k][len(rounds[k])-1]+1 {
			t.Errorf("%s: the second instance published rounds %v, want 10 continuing after %d", k, r, rounds[k][len(rounds[k])-1])
		}
	}
	for _, m := range all[len(before):] {
		var s model.Snapshot
		s.UnmarshalBinary(m.Value)
		if peers, _ := decodePeers(header(m, mixedHeader)); len(peers) != 1 || peers[0].Partition == s.Partition {
			t.Errorf("partition %d's round %d mixed %v, want the other partition", s.Partition, s.Round, peers)
		}
		if k := fmt.Sprintf("%d/lstm", s.Partition); s.Round == after[k][0] && s.Version <= steps[k] {
			t.Errorf("partition %d's first round on the new instance is at step %d, its last on the first at %d: it did not continue from its checkpoint",
				s.Partition, s.Version, steps[k])
		}
	}
}
