package stream

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// flakyListener lets a test take a broker off the network: during an
// outage it drops every connection and refuses new ones.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, nil
	}
}

func (l *flakyListener) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// TestBrokerOutage takes the broker off the network for several seconds
// while a processor runs: the processor retries without failing, and once
// the broker is back every event is counted exactly once.
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a broker outage")
	}
	var fl *flakyListener
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2),
		kfake.SeedTopics(2, "sales"), kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			fl = &flakyListener{Listener: ln, conns: map[net.Conn]struct{}{}}
			return fl, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	days := func(from, to int) []kafka.Message {
		var msgs []kafka.Message
		for d := from; d < to; d++ {
			for _, sku := range []string{"a", "b", "c"} {
				msgs = append(msgs, testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: 2}.message())
			}
		}
		return msgs
	}
	cfg := testConfig(brokers)
	cfg.SessionTimeout = time.Second
	cfg.Published = "tsb"
	produce(t, brokers, "sales", days(0, 10)...)
	rp := startProcessor(t, cfg, t.TempDir())
	defer rp.stop(t)
	series := func(day int) bool {
		for _, sku := range []string{"a", "b", "c"} {
			resp, err := rp.p.Series("s/" + sku)
			if err != nil || len(resp.Buckets) != day+1 {
				return false
			}
		}
		return true
	}
	waitFor(t, 20*time.Second, "days 0-8", func() bool { return series(8) })

	fl.setDown(true)
	time.Sleep(5 * time.Second)
	select {
	case err := <-rp.done:
		t.Fatalf("the processor stopped during the outage: %v", err)
	default:
	}
	fl.setDown(false)

	produce(t, brokers, "sales", days(10, 20)...)
	produce(t, brokers, "sales", days(5, 6)...) // old copies: duplicates
	waitFor(t, 60*time.Second, "days 0-18 after the outage", func() bool { return series(18) })
	for _, sku := range []string{"a", "b", "c"} {
		resp, _ := rp.p.Series("s/" + sku)
		for d, b := range resp.Buckets {
			if b.Qty != 2 {
				t.Errorf("s/%s day %d counted %v, want 2", sku, d, b.Qty)
			}
		}
	}
}

// TestLeaderMoves shuffles the leaders of the input partitions across a
// three-broker cluster again and again while events stream in: the
// partition fetchers follow their leaders, and every event is counted
// exactly once.
func TestLeaderMoves(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4),
		kfake.SeedTopics(4, "sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	// franz-go follows a moved leader at once; kafka-go's writer waits for
	// its next metadata refresh.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("sales"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	skus := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	produceDay := func(d int) {
		t.Helper()
		for _, sku := range skus {
			m := testEvent{ID: fmt.Sprintf("%s%d", sku, d), Store: "s", SKU: sku, TS: ts(d, 12), Qty: 3}.message()
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: m.Key, Value: m.Value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := testConfig(brokers)
	cfg.Published = "tsb"
	rp := startProcessor(t, cfg, t.TempDir())
	defer rp.stop(t)
	const days = 24
	for d := range days {
		produceDay(d)
		if d%3 == 0 {
			c.ShufflePartitionLeaders()
		}
		time.Sleep(50 * time.Millisecond)
	}
	produceDay(days) // closes the last day
	waitFor(t, 60*time.Second, "every event counted", func() bool {
		return testutilCounter(rp.p.m.accepted) == float64((days+1)*len(skus))
	})
	if testutilCounter(rp.p.m.fetchErrs) == 0 {
		t.Error("no fetch failed: the leaders did not move under the fetchers")
	}
	for _, sku := range skus {
		resp, err := rp.p.Series("s/" + sku)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Buckets) != days {
			t.Errorf("s/%s has %d closed days, want %d", sku, len(resp.Buckets), days)
		}
		for d, b := range resp.Buckets {
			if b.Qty != 3 {
				t.Errorf("s/%s day %d counted %v, want 3", sku, d, b.Qty)
			}
		}
	}
}
