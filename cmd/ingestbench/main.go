// Command ingestbench measures trendstream's ingest rate against a bare
// kafka-go consumer on the same topic, in one run. scripts/bench-ingest.sh
// drives it; see the README's benchmark section.
//
//	ingestbench produce -brokers B -events 2000000 -series 10000
//	ingestbench bare    -brokers B
//	ingestbench conn    -brokers B
//	ingestbench run     -brokers B -bin ./trendstream -state DIR
//
// produce fills topic "sales" (8 partitions) with JSON events; bare reads
// every partition with one kafka-go Reader each, fetching only; conn reads
// them with kafka-go's connection-level Conn.ReadBatch, as trendstream's
// own fetcher does, fetching only; run starts
// the trendstream binary on the topic and watches its metrics until it has
// consumed every record. Each mode prints one line: records, seconds,
// records per second and peak RSS.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	bin := fs.String("bin", "./trendstream", "trendstream binary (run mode)")
	stateDir := fs.String("state", "", "state directory (run mode)")
	extra := fs.String("args", "", "extra flags for trendstream run, space separated")
	profile := fs.String("profile", "", "write a CPU profile of the first seconds of trendstream run's processing to this file (run mode)")
	fs.Parse(os.Args[2:])
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
		err = run(ctx, *brokers, *topic, *bin, *stateDir, *extra, *profile)
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

// freeAddr returns a local address no one listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// run starts trendstream run and waits until its metrics show every record
// consumed and committed. With a profile path, it also saves a CPU profile
// of the first three seconds after the processor is ready.
func run(ctx context.Context, brokers, topic, bin, stateDir, extra, profile string) error {
	_, total, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	// A group of its own per run: a changelog left by an earlier run
	// would otherwise hand the new state directory the finished state.
	group := fmt.Sprintf("ingestbench-%d", time.Now().UnixNano())
	args := []string{"run", "--brokers", brokers, "--input-topic", topic, "--state-dir", stateDir,
		"--group", group, "--http-addr", addr, "--max-future", "-1s", "--max-past", "-1s", "--log-level", "warn"}
	pprofAddr := ""
	if profile != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		args = append(args, "--pprof-addr", pprofAddr)
	}
	args = append(args, strings.Fields(extra)...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// The clock starts when every partition has loaded its state and
	// starts fetching (readyz), as the bare consumer's starts before its
	// readers connect.
	var first time.Time
	for first.IsZero() {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				first = time.Now()
			}
		}
		if time.Since(began) > time.Minute {
			return fmt.Errorf("trendstream not ready after a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- saveProfile("http://"+pprofAddr+"/debug/pprof/profile?seconds=3", profile) }()
	} else {
		profiled <- nil
	}
	for {
		committed := committedOffsets(addr)
		if committed >= float64(total) {
			break
		}
		if time.Since(began) > 10*time.Minute {
			return fmt.Errorf("timed out at %v of %d records", committed, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	end := time.Now()
	rss := peakRSS(cmd.Process.Pid)
	el := end.Sub(first).Seconds()
	fmt.Printf("trendstream records=%d seconds=%.2f per_second=%.0f peak_rss_mib=%.0f startup_seconds=%.2f\n",
		total, el, float64(total)/el, rss, first.Sub(began).Seconds())
	return <-profiled
}

// saveProfile writes the response body of url to path.
func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	return f.Close()
}

// committedOffsets reads the sum of committed offsets from a trendstream
// /metrics page.
func committedOffsets(addr string) (committed float64) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(val, 64)
		if strings.HasPrefix(name, "trendstream_committed_offset{") {
			committed += v
		}
	}
	return committed
}

// peakRSS returns a process's peak resident set size in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
