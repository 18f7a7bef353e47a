// Command ingestbench measures trendstream's ingest rate against a bare
// kafka-go consumer on the same topic, in one run, with what each run
// writes to Kafka and Badger. scripts/bench-workloads.sh drives it; see the
// README's benchmark section.
//
//	ingestbench produce -brokers B -events 2000000 -series 10000 -days 28
//	ingestbench bare    -brokers B
//	ingestbench conn    -brokers B
//	ingestbench run     -brokers B -bin ./trendstream -state DIR [-args '--model tsb'] [-profile DIR] [-breakdown] [-trim 5s]
//
// produce fills topic "sales" (8 partitions) with JSON events whose times
// rise evenly over the given days; bare reads every partition with one
// kafka-go Reader each, fetching only; conn reads them with kafka-go's
// connection-level Conn.ReadBatch, as trendstream's own fetcher does,
// fetching only; run starts the trendstream binary on the topic, with a
// consumer group, output, dead-letter and changelog topics of its own, and
// watches its metrics until it has committed every record. Each mode
// prints one line of key=value fields: records, seconds, records per
// second and peak RSS; run adds what the process did and wrote (see run).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/stream"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ingestbench produce|bare|conn|run [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap address")
	topic := fs.String("topic", "sales", "topic")
	events := fs.Int("events", 2_000_000, "events to produce")
	series := fs.Int("series", 10_000, "distinct series")
	partitions := fs.Int("partitions", 8, "partitions of the topic")
	days := fs.Int("days", 2, "days of event time the events span")
	var rc runConfig
	fs.StringVar(&rc.bin, "bin", "./trendstream", "trendstream binary (run mode)")
	fs.StringVar(&rc.stateDir, "state", "", "state directory (run mode)")
	fs.StringVar(&rc.extra, "args", "", "extra flags for trendstream run, space separated (run mode)")
	fs.StringVar(&rc.profile, "profile", "", "directory to write CPU profiles of the whole run in 2-second parts (cpu-NNN.pprof; merge with go tool pprof -proto) and heap profiles at the end and at peak RSS (run mode)")
	fs.BoolVar(&rc.breakdown, "breakdown", false, "after the run, read its changelog and forecast topics and print their bytes by state key kind (run mode; disables -trim)")
	fs.DurationVar(&rc.trim, "trim", 0, "count and delete the records of the run's output and changelog topics this often, to bound the in-memory broker's size on long runs; 0 never (run mode)")
	fs.BoolVar(&rc.keep, "keep", false, "keep the run's output, dead-letter and changelog topics (run mode)")
	fs.IntVar(&rc.brokerPID, "broker-pid", 0, "process id of the broker, whose CPU time during the run is reported (run mode)")
	fs.DurationVar(&rc.timeout, "timeout", 30*time.Minute, "give up when the run has not committed every record after this long (run mode)")
	fs.Parse(os.Args[2:])
	rc.brokers, rc.topic = *brokers, *topic
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "produce":
		err = produce(ctx, *brokers, *topic, *events, *series, *partitions, *days)
	case "conn":
		err = connRead(ctx, *brokers, *topic)
	case "bare":
		err = bare(ctx, *brokers, *topic)
	case "run":
		err = run(ctx, &rc)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

// produce writes n events over the given series, in event-time order over
// the given days, about 110 bytes each.
func produce(ctx context.Context, brokers, topic string, n, series, partitions, days int) error {
	if err := stream.EnsureTopics(ctx, stream.Connection{Brokers: []string{brokers}}, partitions, 0, topic); err != nil {
		return err
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		BatchSize: 10000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireOne}
	defer w.Close()
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(days) * 24 * time.Hour
	msgs := make([]kafka.Message, 0, 10000)
	began := time.Now()
	for i := range n {
		s := r.IntN(series)
		store, sku := fmt.Sprintf("S%03d", s%100), fmt.Sprintf("SKU-%05d", s)
		ts := start.Add(span / time.Duration(n) * time.Duration(i)).Add(time.Duration(r.IntN(600)) * time.Second)
		val := fmt.Appendf(nil, `{"event_id":"ev-%08d","store":"%s","sku":"%s","ts":"%s","qty":%d,"price":%d.%02d}`,
			i, store, sku, ts.Format(time.RFC3339), 1+r.IntN(4), 1+r.IntN(20), r.IntN(100))
		msgs = append(msgs, kafka.Message{Key: []byte(store + "/" + sku), Value: val})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	el := time.Since(began).Seconds()
	fmt.Printf("produce records=%d seconds=%.2f per_second=%.0f\n", n, el, float64(n)/el)
	return nil
}

// endOffsets returns each partition's end offset.
func endOffsets(ctx context.Context, brokers, topic string) (map[int]int64, int64, error) {
	conn, err := kafka.DialContext(ctx, "tcp", brokers)
	if err != nil {
		return nil, 0, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, 0, err
	}
	ends := map[int]int64{}
	var total int64
	for _, p := range parts {
		c, err := kafka.DialLeader(ctx, "tcp", brokers, topic, p.ID)
		if err != nil {
			return nil, 0, err
		}
		first, last, err := c.ReadOffsets()
		c.Close()
		if err != nil {
			return nil, 0, err
		}
		ends[p.ID] = last
		total += last - first
	}
	return ends, total, nil
}

// bare reads every record with one kafka-go Reader per partition, doing
// nothing with them.
func bare(ctx context.Context, brokers, topic string) error {
	ends, total, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var count atomic.Int64
	began := time.Now()
	for p, end := range ends {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond, QueueCapacity: 1000})
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				count.Add(1)
				if m.Offset+1 >= end {
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(began).Seconds()
	fmt.Printf("bare records=%d seconds=%.2f per_second=%.0f peak_rss_mib=%.0f\n", count.Load(), el, float64(total)/el, peakRSS(os.Getpid()))
	return nil
}
