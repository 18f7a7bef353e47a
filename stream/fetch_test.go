package stream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/pipeline"
)

// fetchTopic creates a one-partition topic holding records 0 to n-1 with
// values "v<offset>".
func fetchTopic(t *testing.T, n int) []string {
	t.Helper()
	brokers := kafkatest.NewCluster(t, 1, "in")
	appendRecords(t, brokers, 0, n)
	return brokers
}

// appendRecords writes records from to to-1 of topic "in".
func appendRecords(t *testing.T, brokers []string, from, to int) {
	t.Helper()
	var msgs []kafka.Message
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)})
	}
	produce(t, brokers, "in", msgs...)
}

// checkRecords checks that recs are the records from offset first on.
func checkRecords(t *testing.T, recs []pipeline.Record, first int64, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := first + int64(i); r.Offset != want || string(r.Value) != fmt.Sprintf("v%d", want) {
			t.Fatalf("record %d: offset %d value %q, want offset %d", i, r.Offset, r.Value, want)
		}
	}
}

// TestFetcher checks the partition fetcher against the in-process broker:
// batches bounded by count and wait, symbolic start offsets, records
// deleted before they were read, offsets past the end and cancellation.
func TestFetcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newF := func(brokers []string, from int64, maxWait time.Duration) *fetcher {
		f := newFetcher(&Connection{Brokers: brokers}, "in", 0, 1<<20, maxWait, from, slog.New(slog.DiscardHandler))
		t.Cleanup(f.close)
		return f
	}

	t.Run("batches of at most max records", func(t *testing.T) {
		f := newF(fetchTopic(t, 25), kafka.FirstOffset, time.Second)
		for _, want := range []struct {
			first int64
			n     int
		}{{0, 10}, {10, 10}, {20, 5}} {
			recs, err := f.fetch(ctx, nil, 10, 50*time.Millisecond, 0)
			if err != nil {
				t.Fatal(err)
			}
			checkRecords(t, recs, want.first, want.n)
		}
		if f.lag() != 0 {
			t.Errorf("lag %d at the end", f.lag())
		}
	})

	t.Run("waits for the first record", func(t *testing.T) {
		brokers := fetchTopic(t, 5)
		f := newF(brokers, kafka.LastOffset, 200*time.Millisecond)
		go func() {
			time.Sleep(300 * time.Millisecond)
			appendRecords(t, brokers, 5, 8)
		}()
		recs, err := f.fetch(ctx, nil, 100, 100*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, 5, 3)
	})

	t.Run("resumes from a stored offset", func(t *testing.T) {
		f := newF(fetchTopic(t, 12), 7, time.Second)
		recs, err := f.fetch(ctx, nil, 100, 50*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, 7, 5)
	})

	t.Run("skips deleted records", func(t *testing.T) {
		brokers := fetchTopic(t, 20)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		req := kmsg.NewPtrDeleteRecordsRequest()
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = "in"
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Offset = 15
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("DeleteRecords: error code %d", code)
		}
		f := newF(brokers, 3, time.Second)
		recs, err := f.fetch(ctx, nil, 100, 50*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, 15, 5)
	})

	t.Run("offset past the end", func(t *testing.T) {
		f := newF(fetchTopic(t, 3), 50, time.Second)
		_, err := f.fetch(ctx, nil, 100, 50*time.Millisecond, 0)
		if err == nil || !strings.Contains(err.Error(), "past its end") || !permanent(err) {
			t.Fatalf("got %v, want a permanent error: an offset past the end", err)
		}
	})

	t.Run("skips a transaction marker", func(t *testing.T) {
		// kafka-go returns the commit marker, which takes the last offset,
		// as a message: it is no sales event and must not reach the
		// dead-letter topic.
		brokers := kafkatest.NewCluster(t, 1, "in")
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("in"))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		f := newF(brokers, kafka.FirstOffset, time.Second)
		recs, err := f.fetch(ctx, nil, 100, 100*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, 0, 3)
		if f.next != 4 || f.lag() != 0 || f.controls != 1 {
			t.Errorf("next offset %d, lag %d, %d markers skipped; want 4, 0 and 1", f.next, f.lag(), f.controls)
		}
	})

	t.Run("gives up waiting after its patience", func(t *testing.T) {
		f := newF(fetchTopic(t, 2), 2, 100*time.Millisecond)
		began := time.Now()
		recs, err := f.fetch(ctx, nil, 100, time.Second, 300*time.Millisecond)
		if err != nil || len(recs) != 0 {
			t.Fatalf("got %d records and %v, want none", len(recs), err)
		}
		if d := time.Since(began); d < 300*time.Millisecond || d > 5*time.Second {
			t.Errorf("returned after %v, want about 300ms", d)
		}
	})

	t.Run("cancellation interrupts a waiting fetch", func(t *testing.T) {
		f := newF(fetchTopic(t, 2), 2, 20*time.Second)
		cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer ccancel()
		began := time.Now()
		recs, err := f.fetch(cctx, nil, 100, time.Second, 0)
		if err == nil || len(recs) != 0 {
			t.Fatalf("got %d records and %v, want the context's error", len(recs), err)
		}
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("cancellation took %v", d)
		}
	})
}

// TestFetchErrorsPermanent checks which fetch errors are logged as needing
// an operator.
func TestFetchErrorsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("stream: offset 9 is %w 3", errPastEnd), true},
		{fmt.Errorf("fetching: %w", kafka.TopicAuthorizationFailed), true},
		{fmt.Errorf("fetching: %w", kafka.NotLeaderForPartition), false},
		{fmt.Errorf("fetching: %w", kafka.RequestTimedOut), false},
		{context.DeadlineExceeded, false},
	} {
		if got := permanent(tc.err); got != tc.want {
			t.Errorf("permanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestTransactionalInput runs the processor on events written by a
// transactional producer: the commit and abort markers between them are
// skipped and counted, not dead-lettered, and every event is counted,
// those of the aborted transaction too (kafka-go reads uncommitted: the
// README says so).
func TestTransactionalInput(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 1, "sales", "sales.dlq")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("pos"), kgo.DefaultProduceTopic("sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const txns, perTxn = 3, 4 // the last one aborted
	for tx := range txns {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range perTxn {
			m := testEvent{ID: fmt.Sprintf("e%d-%d", tx, i), Store: "s1", SKU: "a", TS: ts(tx, float64(i)), Qty: 1}.message()
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: m.Key, Value: m.Value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		commit := kgo.TransactionEndTry(tx < txns-1)
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	rp := startProcessor(t, testConfig(brokers), t.TempDir())
	defer rp.stop(t)
	waitFor(t, 20*time.Second, "every event accepted", func() bool {
		return testutilCounter(rp.p.m.accepted) == txns*perTxn
	})
	waitFor(t, 5*time.Second, "every marker skipped", func() bool {
		return testutilCounter(rp.p.m.markers) == txns
	})
	if n := testutilCounter(rp.p.m.consumed); n != txns*perTxn {
		t.Errorf("%v records consumed, want %d", n, txns*perTxn)
	}
	if dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 0, time.Second, 5*time.Second); len(dlq) != 0 {
		t.Errorf("%d dead letters, want none: %q", len(dlq), dlq[0].Value)
	}
}

// TestMarkerShapedData writes a data record shaped like a transaction
// marker (a 4-byte key of version 0 and type 0, a 6-byte value, no
// headers) with an ordinary producer: it is data, so it must be
// dead-lettered and counted, not skipped as a marker.
func TestMarkerShapedData(t *testing.T) {
	brokers := kafkatest.NewCluster(t, 1, "sales", "sales.dlq")
	fake := kafka.Message{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 7}}
	produce(t, brokers, "sales", fake, testEvent{ID: "e", Store: "s1", SKU: "a", TS: ts(0, 1), Qty: 1}.message())
	rp := startProcessor(t, testConfig(brokers), t.TempDir())
	defer rp.stop(t)
	waitFor(t, 20*time.Second, "both records consumed", func() bool {
		return testutilCounter(rp.p.m.consumed) == 2
	})
	if n := testutilCounter(rp.p.m.markers); n != 0 {
		t.Errorf("%v records taken for markers, want 0", n)
	}
	dlq := kafkatest.ReadTopic(t, brokers, "sales.dlq", 1, 5*time.Second, 10*time.Second)
	if len(dlq) != 1 || !bytes.Equal(dlq[0].Value, fake.Value) || header(dlq[0], "source") != "sales/0/0" {
		t.Fatalf("dead letters %v, want the marker-shaped record", dlq)
	}
}
