package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newProxy starts a kfake cluster of brokers brokers with topic t (one
// partition) and a proxy in front of it, both closed when the test ends.
func newProxy(t *testing.T, brokers int) (*Proxy, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p, err := New(c.ListenAddrs()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, c
}

func newClient(t *testing.T, p *Proxy, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.Addrs()...), kgo.DefaultProduceTopic("t"),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// records returns the values in topic t, read directly from the cluster.
func records(t *testing.T, c *kfake.Cluster) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	end, err := endOffset(c)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for int64(len(out)) < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), end)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func endOffset(c *kfake.Cluster) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	part := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
		return 0, err
	}
	return part.Offset, nil
}

func isProxy(p *Proxy, host string, port int32) bool {
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		if l.ln.Addr().String() == addr {
			return true
		}
	}
	return false
}

// TestRewritesAddresses checks that clients learn only the proxy's
// addresses, one per broker, from Metadata and FindCoordinator.
func TestRewritesAddresses(t *testing.T) {
	p, _ := newProxy(t, 3)
	cl := newClient(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 3 {
		t.Fatalf("metadata names %d brokers, want 3", len(meta.Brokers))
	}
	seen := map[string]bool{}
	for _, b := range meta.Brokers {
		if !isProxy(p, b.Host, b.Port) {
			t.Errorf("metadata names broker %d at %s:%d, not a proxy address", b.NodeID, b.Host, b.Port)
		}
		seen[fmt.Sprint(b.Port)] = true
	}
	if len(seen) != 3 {
		t.Errorf("metadata names %d distinct proxy listeners, want 3", len(seen))
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorKeys = "g", []string{"g"}
	coord, err := fc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	host, port := coord.Host, coord.Port
	if len(coord.Coordinators) > 0 {
		host, port = coord.Coordinators[0].Host, coord.Coordinators[0].Port
	}
	if !isProxy(p, host, port) {
		t.Errorf("the coordinator is at %s:%d, not a proxy address", host, port)
	}

	// kafka-go's consumer group works through the proxy too.
	w := &kafka.Writer{Addr: kafka.TCP(p.Addrs()[0]), Topic: "t", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: p.Addrs(), GroupID: "g", Topic: "t", MaxWait: 50 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil || string(m.Value) != "x" {
		t.Fatalf("group read %q, %v", m.Value, err)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestFailProduce checks each produce fault by what reaches the log: a
// refused or lost request writes nothing and the retry writes the record
// once; a cut one writes it, and a producer without idempotence that
// retries writes it twice.
func TestFailProduce(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want int
	}{
		{Refuse, 1},
		{Lose, 1},
		{Cut, 2},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p, c := newProxy(t, 1)
			cl := newClient(t, p, kgo.DisableIdempotentWrite(), kgo.RequestTimeoutOverhead(time.Second))
			fired := p.FailProduce("t", tc.mode)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-fired:
			default:
				t.Fatal("the fault was not applied")
			}
			if got := records(t, c); len(got) != tc.want {
				t.Errorf("the topic holds %d records, want %d", len(got), tc.want)
			}
		})
	}
}

// TestRefuseAnswers checks the error a refused request gets, and that
// only the next request to the topic is refused.
func TestRefuseAnswers(t *testing.T) {
	p, _ := newProxy(t, 1)
	cl := newClient(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	produce := func() error {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = recordBatch([]byte("v"))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	}
	p.FailProduce("other", Refuse)
	p.FailProduce("t", Refuse)
	if err := produce(); !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Errorf("first produce: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if err := produce(); err != nil {
		t.Errorf("second produce: %v, want success", err)
	}
	p.CapMessageSize("t", 10)
	if err := produce(); err != nil {
		t.Errorf("a record within the cap: %v, want success", err)
	}
	p.CapMessageSize("other", 5)
	if err := produce(); err != nil {
		t.Errorf("a record above another topic's cap: %v, want success", err)
	}
	p.CapMessageSize("t", 5)
	if err := produce(); !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("a record above the cap: %v, want MESSAGE_TOO_LARGE", err)
	}
}

// recordBatch returns an uncompressed v2 record batch of one record per
// value.
func recordBatch(values ...[]byte) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = v
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the zero length took one byte
		recs = r.AppendTo(recs)
	}
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.NumRecords = int32(len(values))
	b.LastOffsetDelta = int32(len(values) - 1)
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.Records = recs
	b.Length = int32(len(b.AppendTo(nil)) - 12)
	raw := b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// TestCapMessageSize checks that kafka-go sees a message above the cap
// refused as too large, and one below it written.
func TestCapMessageSize(t *testing.T) {
	p, c := newProxy(t, 1)
	p.CapMessageSize("t", 1000)
	w := &kafka.Writer{Addr: kafka.TCP(p.Addrs()...), Topic: "t", BatchTimeout: time.Millisecond, MaxAttempts: 2,
		RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.WriteMessages(ctx, kafka.Message{Value: bytes.Repeat([]byte("x"), 2000)})
	if we, ok := err.(kafka.WriteErrors); !ok || len(we) != 1 || !errors.Is(we[0], kafka.MessageSizeTooLarge) {
		t.Errorf("writing 2000 bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("small")}); err != nil {
		t.Errorf("writing 5 bytes: %v", err)
	}
	if got := records(t, c); len(got) != 1 || got[0] != "small" {
		t.Errorf("the topic holds %q, want [small]", got)
	}
}

// TestFreezeDelayReset checks the connection-level faults by how long a
// metadata request takes and whether it succeeds.
func TestFreezeDelayReset(t *testing.T) {
	p, _ := newProxy(t, 1)
	cl := newClient(t, p)
	meta := func(within time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		start := time.Now()
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		return time.Since(start), err
	}
	if _, err := meta(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	p.Freeze()
	if _, err := meta(300 * time.Millisecond); err == nil {
		t.Error("a request passed a frozen proxy")
	}
	p.Thaw()
	if _, err := meta(5 * time.Second); err != nil {
		t.Errorf("after the thaw: %v", err)
	}

	p.SetDelay(300 * time.Millisecond)
	if took, err := meta(5 * time.Second); err != nil || took < 300*time.Millisecond {
		t.Errorf("a delayed request took %v (%v), want at least 300ms", took, err)
	}
	p.SetDelay(0)

	p.mu.Lock()
	before := len(p.links)
	p.mu.Unlock()
	if before == 0 {
		t.Fatal("no connection open before the reset")
	}
	p.Reset()
	p.mu.Lock()
	after := len(p.links)
	p.mu.Unlock()
	if after != 0 {
		t.Errorf("%d connections open after the reset", after)
	}
	if _, err := meta(5 * time.Second); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}

// TestClose checks that Close ends every goroutine, frozen ones included,
// and closes the listeners.
func TestClose(t *testing.T) {
	p, _ := newProxy(t, 1)
	cl := newClient(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	p.Freeze()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	}()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if conn, err := net.DialTimeout("tcp", p.Addrs()[0], time.Second); err == nil {
		conn.Close()
		t.Error("the listener accepts connections after Close")
	}
}
