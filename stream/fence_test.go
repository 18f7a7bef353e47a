package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/pipeline"
)

// memberLog is a log handler that remembers the consumer-group member id
// of the last generation started.
type memberLog struct {
	mu     sync.Mutex
	member string
}

func (h *memberLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *memberLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *memberLog) WithGroup(string) slog.Handler            { return h }
func (h *memberLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "generation started" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "member" {
				h.mu.Lock()
				h.member = a.Value.String()
				h.mu.Unlock()
			}
			return true
		})
	}
	return nil
}

func (h *memberLog) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.member
}

// TestZombieOwnerIsFenced pauses a partition's owner in the middle of a
// commit, as a GC pause, a frozen VM or SIGSTOP would, for longer than the
// session timeout: its heartbeats stop and the group gives the partition
// to a second instance, which restores it. The first then resumes and
// finishes its commit, late: its stale batch must not win. It commits
// nothing locally, and a third instance restoring from the changelog
// after the second has processed more counts every event exactly once.
// The pause comes before the owner confirms its generation, which then
// stops it from writing at all, or between that check and its changelog
// write, whose records restores must then ignore, whether they land
// before the second instance's first commit or after its later ones.
func TestZombieOwnerIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out session timeouts")
	}
	for _, tc := range []struct {
		stage commitStage
		late  bool // A resumes once B has committed, not before
	}{
		{stageCheck, false},
		{stageWrite, false},
		{stageWrite, true},
	} {
		name := fmt.Sprintf("%v, resumed before the new owner's first commit", tc.stage)
		if tc.late {
			name = fmt.Sprintf("%v, resumed after the new owner's commits", tc.stage)
		}
		t.Run(name, func(t *testing.T) { testZombie(t, tc.stage, tc.late) })
	}
}

func testZombie(t *testing.T, stage commitStage, late bool) {
	c := fakeCluster(t, 1)
	brokers := c.ListenAddrs()
	skus := []string{"a", "b", "c", "d"}
	days := func(from, to int) []kafka.Message { return dayEvents(skus, from, to) }
	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	cfg.SessionTimeout = time.Second
	cfg.ShutdownGrace = time.Minute // the pause must not run into it

	// A owns the partition and commits days 0-10.
	var log memberLog
	acfg := cfg
	acfg.Logger = slog.New(&log)
	var armed atomic.Bool
	paused, release := make(chan struct{}), make(chan struct{})
	a := startProcessor(t, acfg, t.TempDir(), func(p *Processor) {
		p.commitHook = func(s commitStage, _ int32) {
			if s == stage && armed.CompareAndSwap(true, false) {
				close(paused)
				<-release
			}
		}
	})
	pA, dbA := a.p, a.db
	produce(t, brokers, "sales", days(0, 11)...)
	waitFor(t, 30*time.Second, "A to commit days 0-10", committed(dbA, 44))

	// A freezes while committing day 11, and stops heartbeating.
	armed.Store(true)
	produce(t, brokers, "sales", days(11, 12)...)
	select {
	case <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("A never reached the paused stage of its commit")
	}
	memberA := log.get()
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, Count: -1, When: func(req kmsg.Request) bool {
		hb, ok := req.(*kmsg.HeartbeatRequest)
		return ok && hb.MemberID == memberA
	}})

	// B takes the partition over and restores it. Unless A resumes late,
	// B holds its first commit back until A has resumed and finished.
	bcfg := cfg
	bcfg.StartOffset = StartLatest
	bHeld, aDone := make(chan struct{}), make(chan struct{})
	var bFirst atomic.Bool
	b := startProcessor(t, bcfg, t.TempDir(), func(p *Processor) {
		p.commitHook = func(s commitStage, _ int32) {
			if s == stageCheck && bFirst.CompareAndSwap(false, true) {
				close(bHeld)
				if !late {
					<-aDone
				}
			}
		}
	})
	dbB := b.db
	select {
	case <-bHeld:
	case <-time.After(30 * time.Second):
		t.Fatal("B never took the partition over")
	}
	bCommits := func() {
		waitFor(t, 30*time.Second, "B to commit day 11", committed(dbB, 48))
		produce(t, brokers, "sales", days(12, 13)...)
		waitFor(t, 30*time.Second, "B to commit day 12", committed(dbB, 52))
	}
	if late {
		bCommits()
	}

	// A resumes and finishes its commit of day 11.
	close(release)
	waitFor(t, 30*time.Second, "A to let the partition go", func() bool { return !pA.Owns(0) })
	if got, err := pipeline.LocalOffset(dbA, 0); err != nil || got != 44 {
		t.Errorf("A committed its stale batch locally: next offset %d (%v), want 44", got, err)
	}
	a.stop(t)
	close(aDone)
	if !late {
		bCommits()
	}
	b.stop(t)

	// Records stamped with A's generation after B's fence: A's write when
	// its pause fell between its check and its write, none otherwise.
	stale, high := 0, int64(0)
	for _, m := range kafkatest.ReadTopic(t, brokers, "test.changelog", 0, time.Second, 20*time.Second) {
		if tok := recordToken(&m); tok < high {
			stale++
		} else {
			high = tok
		}
	}
	if (stale > 0) != (stage == stageWrite) {
		t.Errorf("%d changelog records of A follow B's fence", stale)
	}

	// C restores from the changelog, which the stale batch must not have
	// rolled back: every event counts once.
	c2 := startProcessor(t, bcfg, t.TempDir())
	defer c2.stop(t)
	produce(t, brokers, "sales", days(13, 14)...)
	for _, sku := range skus {
		var resp *SeriesResponse
		waitFor(t, 30*time.Second, "days 0-12 of s/"+sku, func() bool {
			var err error
			resp, err = c2.p.Series("s/" + sku)
			return err == nil && len(resp.Buckets) == 13
		})
		for d, b := range resp.Buckets {
			if b.Qty != float64(1+d%3) {
				t.Errorf("s/%s day %d counted %v, want %v", sku, d, b.Qty, 1+d%3)
			}
		}
	}
}

// TestTakeoverRewritesUnfinishedCommit stops an owner in the middle of a
// commit, its records written and its commit marker refused. The next
// owner discards those records and rewrites their keys after its fence:
// a restore taken after its first commit must then hold exactly its
// store, not the unfinished commit's writes that its own first commit
// did not happen to overwrite.
func TestTakeoverRewritesUnfinishedCommit(t *testing.T) {
	c := fakeCluster(t, 1)
	brokers := c.ListenAddrs()
	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	cfg.ShutdownGrace = 500 * time.Millisecond
	// Day 11 brings two new series after two known ones: the first of
	// B's commits of it does not write the new ones.
	day := func(d int, skus ...string) []kafka.Message {
		var msgs []kafka.Message
		for _, sku := range skus {
			msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: 1}.message())
		}
		return msgs
	}
	a := startProcessor(t, cfg, t.TempDir())
	for d := range 11 {
		produce(t, brokers, "sales", day(d, "a", "b", "c", "d")...)
	}
	waitFor(t, 30*time.Second, "A to commit days 0-10", committed(a.db, 44))
	marker := pipeline.CommitPointKey(nil, 0)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "test.changelog", Count: -1, Err: kerr.InvalidRecord,
		When: func(req kmsg.Request) bool { return produces(req, "test.changelog", marker) }})
	produce(t, brokers, "sales", day(11, "a", "b", "e", "f")...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fault.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	a.stop(t) // abandons the commit of day 11 after the shutdown grace
	fault.Remove()

	// B commits day 11 two records at a time; it holds its second commit
	// back while the changelog is restored.
	bcfg := cfg
	bcfg.StartOffset, bcfg.BatchSize = StartLatest, 2
	held, release := make(chan struct{}), make(chan struct{})
	var commits atomic.Int32
	b := startProcessor(t, bcfg, t.TempDir(), func(p *Processor) {
		p.commitHook = func(s commitStage, _ int32) {
			if s == stageCheck && commits.Add(1) == 2 {
				close(held)
				<-release
			}
		}
	})
	dbB := b.db
	defer b.stop(t)
	defer close(release)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("B never reached its second commit")
	}
	if got, err := pipeline.LocalOffset(dbB, 0); err != nil || got != 46 {
		t.Fatalf("B's first commit left next offset %d (%v), want 46", got, err)
	}
	into := memDB(t)
	cl := newChangelog(Connection{Brokers: brokers}, "test.changelog", time.Hour, slog.New(slog.DiscardHandler), newMetrics(nil))
	if _, err := cl.restore(ctx, into, 0, -1, false); err != nil {
		t.Fatal(err)
	}
	got, want := partitionState(t, into, 0), partitionState(t, dbB, 0)
	for k, v := range got {
		if w, ok := want[k]; !ok || w != v {
			t.Errorf("restored key %x = %x, the owner's store holds %x (present %v)", k, v, w, ok)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("restored state lacks key %x", k)
		}
	}
}

// TestGenerationsStartOver gives the changelog a fence of generation 1000,
// as a consumer group deleted and created again leaves it, whose new
// generations start at 1: the new owner must raise its token above the
// changelog's, or every restore would ignore its commits.
func TestGenerationsStartOver(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 1, "sales")
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "test.changelog",
		NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}}}}); err != nil {
		t.Fatal(err)
	}
	old := tokenHeaders(1000)
	writeChangelog(t, brokers, "test.changelog", []kafka.Message{{Key: pipeline.FenceKey(nil, 0), Value: old[0].Value, Headers: old}})

	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	var msgs []kafka.Message
	for d := range 6 {
		msgs = append(msgs, testEvent{ID: fmt.Sprintf("a%d", d), Store: "s", SKU: "a", TS: ts(d, 12), Qty: 2}.message())
	}
	produce(t, brokers, "sales", msgs...)
	a := startProcessor(t, cfg, t.TempDir())
	waitFor(t, 30*time.Second, "A to commit", func() bool {
		got, err := pipeline.LocalOffset(a.db, 0)
		return err == nil && got == 6
	})
	a.stop(t)

	cfg.StartOffset = StartLatest
	b := startProcessor(t, cfg, t.TempDir())
	defer b.stop(t)
	waitFor(t, 30*time.Second, "B to restore days 0-4", func() bool {
		resp, err := b.p.Series("s/a")
		return err == nil && len(resp.Buckets) == 5
	})
}
