package stream

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
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
	cfg.Forecasting = Forecasting{Published: "tsb"}
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
