package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/stream"
)

// buildBinary compiles trendstream once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "trendstream-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "trendstream")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t testing.TB) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// devCluster starts an in-process broker whose groups notice dead members
// within a second, as the crash tests kill them.
func devCluster(t testing.TB, partitions int32) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.SeedTopics(partitions, "sales", "forecasts", "sales.dlq"),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// child is a trendstream process. done is closed when it has exited, with
// its exit error in err.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startChild(t testing.TB, logPath string, args ...string) *child {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), args...)
	cmd.Stdout, cmd.Stderr = f, f
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); f.Close(); close(c.done) }()
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// crashEvents builds a deterministic event stream: for each series and day
// a few events at random hours, arriving up to 50 minutes out of order
// (within the one-hour lateness), with repeated event ids and malformed
// records mixed in. It returns the records in arrival order, the true daily
// totals of days 0..days-2 (day days-1 only closes the one before it) and
// the number of malformed records.
func crashEvents(seed uint64, series, days int) ([]kafka.Message, map[string][]float64, int) {
	r := rand.New(rand.NewPCG(seed, 99))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	type arrival struct {
		at  time.Time
		msg kafka.Message
	}
	var all []arrival
	truth := make(map[string][]float64)
	n := 0
	for s := range series {
		store, sku := fmt.Sprintf("S%d", s%4), fmt.Sprintf("K%03d", s)
		id := store + "/" + sku
		truth[id] = make([]float64, days-1)
		for d := range days {
			k := 1 + r.IntN(3)
			if d == days-1 {
				k = 1
			}
			for range k {
				et := start.Add(time.Duration(d)*24*time.Hour + time.Duration(r.IntN(24*60))*time.Minute)
				if d == days-1 {
					et = start.Add(time.Duration(d)*24*time.Hour + 12*time.Hour)
				}
				qty := float64(1+r.IntN(8)) / 2
				v, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("ev-%d", n), "store": store, "sku": sku,
					"ts": et.Format(time.RFC3339), "qty": qty, "price": 2.5})
				n++
				msg := kafka.Message{Key: []byte(id), Value: v}
				at := et.Add(time.Duration(r.IntN(50)) * time.Minute)
				all = append(all, arrival{at, msg})
				if r.IntN(10) == 0 {
					all = append(all, arrival{at.Add(time.Duration(r.IntN(72)) * time.Hour), msg})
				}
				if d < days-1 {
					truth[id][d] += qty
				}
			}
		}
	}
	malformed := 0
	for i := range len(all) / 40 {
		all = append(all, arrival{start.Add(time.Duration(r.IntN(days*24)) * time.Hour),
			kafka.Message{Key: []byte("S0/K000"), Value: fmt.Appendf(nil, `{"event_id":"bad-%d","qty":`, i)}})
		malformed++
	}
	slices.SortStableFunc(all, func(a, b arrival) int { return a.at.Compare(b.at) })
	msgs := make([]kafka.Message, len(all))
	for i, a := range all {
		msgs[i] = a.msg
	}
	return msgs, truth, malformed
}

// TestCrashRecovery SIGKILLs the real binary at random points while a
// known event stream with duplicates and malformed records flows in,
// restarts it each time over the same state directory, and checks that
// every series' closed buckets equal the ground truth exactly, and that
// the HTTP API serves the last forecast record on the forecasts topic of
// every series, byte for byte, before and after one more SIGKILL.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary repeatedly")
	}
	brokers := devCluster(t, 4)
	msgs, truth, malformed := crashEvents(1, 40, 10)
	dir := t.TempDir()
	stateDir, logPath := filepath.Join(dir, "state"), filepath.Join(dir, "run.log")
	httpAddr := kafkatest.FreeAddr(t)
	args := []string{"run", "--brokers", brokers[0], "--state-dir", stateDir, "--http-addr", httpAddr,
		"--session-timeout", "1s", "--max-future", "-1s", "--max-past", "-1s", "--batch-size", "64", "--log-level", "debug"}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
			BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		defer w.Close()
		for i := 0; i < len(msgs); i += 10 {
			if err := w.WriteMessages(ctx, msgs[i:min(i+10, len(msgs))]...); err != nil {
				produced <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		produced <- nil
	}()

	// Kill the processor at random points of its processing, while records
	// stream in and while it catches up: once it has loaded its partitions
	// (readyz), wait a random while, then SIGKILL. Then let a last one
	// finish.
	r := rand.New(rand.NewPCG(7, 7))
	const kills = 6
	for range kills {
		c := startChild(t, logPath, args...)
		waitReady(t, c, httpAddr)
		select {
		case <-c.done:
			t.Fatalf("trendstream exited: %v\n%s", c.err, tail(logPath, 30))
		case <-time.After(time.Duration(r.IntN(1000)) * time.Millisecond):
			c.kill()
		}
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	c := startChild(t, logPath, args...)
	defer c.kill()
	t.Logf("killed the processor %d times while %d records were produced", kills, len(msgs))

	lastDay := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 8)
	for id, want := range truth {
		var got stream.SeriesResponse
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get("http://" + httpAddr + "/v1/series/" + id)
			if err == nil {
				if resp.StatusCode == http.StatusOK {
					err = json.NewDecoder(resp.Body).Decode(&got)
				}
				resp.Body.Close()
			}
			if err == nil && len(got.Buckets) > 0 && got.Buckets[len(got.Buckets)-1].Start.Equal(lastDay) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("series %s never caught up: %+v\n%s", id, got.Buckets, tail(logPath, 30))
			}
			time.Sleep(50 * time.Millisecond)
		}
		checkBuckets(t, id, got, want)
	}
	checkLatestForecasts(t, brokers, httpAddr, truth, logPath)
	c.kill()
	c = startChild(t, logPath, args...)
	defer c.kill()
	waitReady(t, c, httpAddr)
	checkLatestForecasts(t, brokers, httpAddr, truth, logPath)

	// A SIGTERM stops the last processor cleanly and quickly: it finishes
	// its batch, commits and leaves the group.
	stopped := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			t.Errorf("trendstream exited with %v after SIGTERM\n%s", c.err, tail(logPath, 20))
		}
		if !strings.Contains(tail(logPath, 5), "stopped cleanly") {
			t.Errorf("no clean stop logged:\n%s", tail(logPath, 10))
		}
		t.Logf("stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Errorf("trendstream still running 15s after SIGTERM")
	}

	// Every malformed record reached the dead-letter topic at least once.
	seen := map[string]bool{}
	for _, m := range kafkatest.ReadTopic(t, brokers, "sales.dlq", 0, time.Second, 10*time.Second) {
		for _, h := range m.Headers {
			if h.Key == "reason" && string(h.Value) == "invalid_json" {
				seen[string(m.Value)] = true
			}
		}
	}
	if len(seen) != malformed {
		t.Errorf("%d distinct malformed records in the dead-letter topic, want %d", len(seen), malformed)
	}
}

// checkLatestForecasts checks that the HTTP API serves as each series'
// forecast the bytes of its last record on the forecasts topic, waiting
// a while for the commit that follows a batch's records.
func checkLatestForecasts(t *testing.T, brokers []string, httpAddr string, series map[string][]float64, logPath string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		last := map[string]kafka.Message{}
		for _, m := range kafkatest.ReadTopic(t, brokers, "forecasts", 0, time.Second, 10*time.Second) {
			if prev, ok := last[string(m.Key)]; !ok || m.Offset > prev.Offset {
				last[string(m.Key)] = m
			}
		}
		var mismatch []string
		for id := range series {
			var got stream.SeriesResponse
			resp, err := http.Get("http://" + httpAddr + "/v1/series/" + id)
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("series %s: %v", id, err)
			}
			want, ok := last[id]
			if !ok {
				t.Fatalf("series %s has no record on the forecasts topic", id)
			}
			if !bytes.Equal(got.Forecast, want.Value) {
				mismatch = append(mismatch, fmt.Sprintf("series %s: HTTP API serves\n%s\nthe topic's last record is\n%s", id, got.Forecast, want.Value))
			}
		}
		if len(mismatch) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d series serve another forecast than their last record, e.g. %s\n%s", len(mismatch), len(series), mismatch[0], tail(logPath, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReady waits until the child's /readyz answers 200.
func waitReady(t testing.TB, c *child, httpAddr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			t.Fatalf("trendstream exited: %v\n%s", c.err, tail(c.log, 30))
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("trendstream not ready within 60s\n%s", tail(c.log, 30))
}

// checkBuckets checks a series' daily buckets from 2024-01-01 against the
// ground truth totals.
func checkBuckets(t testing.TB, id string, got stream.SeriesResponse, want []float64) {
	t.Helper()
	qty := make([]float64, len(want))
	first := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, b := range got.Buckets {
		qty[int(b.Start.Sub(first)/(24*time.Hour))] = b.Qty
	}
	if !slices.Equal(qty, want) {
		t.Errorf("series %s buckets %v, want %v", id, qty, want)
	}
}
