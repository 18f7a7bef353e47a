package kafkatest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ReadTopic reads every partition of topic from its first record, each
// at least up to the end it had when ReadTopic was called and then until
// no record has arrived for idle, and all of them until n records have
// arrived (when n > 0) or within has passed. It returns the records in
// arrival order and fails the test if the topic cannot be described.
// Reading to the end first keeps a slow machine from returning a topic's
// records only in part.
func ReadTopic(t testing.TB, brokers []string, topic string, n int, idle, within time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p.ID))
	}
	ends := map[int]int64{}
	resp, err := (&kafka.Client{Addr: kafka.TCP(brokers...)}).ListOffsets(ctx, req)
	if err != nil {
		t.Fatalf("listing the end offsets of %s: %v", topic, err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("listing the end offset of %s/%d: %v", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
	}
	var mu sync.Mutex
	var out []kafka.Message
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			reached := ends[p.ID] <= 0
			for {
				fctx, stop := ctx, context.CancelFunc(func() {})
				if reached {
					fctx, stop = context.WithTimeout(ctx, idle)
				}
				m, err := r.FetchMessage(fctx)
				stop()
				if err != nil {
					return
				}
				reached = reached || m.Offset+1 >= ends[p.ID]
				mu.Lock()
				out = append(out, m)
				full := n > 0 && len(out) >= n
				mu.Unlock()
				if full {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	return out
}

// NewCluster starts an in-process kfake broker, closed when the test ends,
// whose topics have partitions partitions, auto-created or seeded from
// topics, and returns its address.
func NewCluster(t testing.TB, partitions int32, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.SeedTopics(partitions, topics...),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// FreeAddr returns a local address nobody listens on: for a server a test
// starts, or a broker that is down.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
