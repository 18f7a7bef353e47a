package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/faultdisk"
	"github.com/trendstream/trendstream/internal/faultproxy"
	"github.com/trendstream/trendstream/internal/kafkatest"
	"github.com/trendstream/trendstream/state"
)

// networkFault is one step of TestNetworkFaults: inject starts the fault
// and returns a channel closed once it has hit (nil when injecting is
// hitting), and end, if set, lifts it once it has hit.
type networkFault struct {
	name   string
	inject func(px *faultproxy.Proxy) <-chan struct{}
	end    func(px *faultproxy.Proxy)
}

// produceFault fails the next n produce requests to topic in mode: more
// than kafka-go's writer retries by itself, so that the processor's own
// retries are needed.
func produceFault(topic string, mode faultproxy.Mode, n int) networkFault {
	return networkFault{
		name: fmt.Sprintf("%v %d produce requests to %s", mode, n, topic),
		inject: func(px *faultproxy.Proxy) <-chan struct{} {
			var hit <-chan struct{}
			for range n {
				hit = px.FailProduce(topic, mode)
			}
			return hit
		},
	}
}

// TestNetworkFaults runs the binary behind a fault proxy while a known
// event stream with duplicates and malformed records flows in, and
// injects one network or broker fault after another: delays, reset
// connections, a freeze longer than the session timeout, produce requests
// to the forecasts and to the changelog refused, lost or cut (written
// with the answer lost), and a dead-letter topic that refuses large
// records. Afterwards every series' buckets equal the ground truth, in
// the processor and in a second one that restores them from the
// changelog alone; every bucket close has published each series'
// forecast at least once, and every malformed record has a dead letter.
func TestNetworkFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary through a dozen faults")
	}
	const group = "faults"
	brokers := devCluster(t, 4)
	px, err := faultproxy.New(brokers...)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	msgs, truth, malformed := crashEvents(21, 40, 10)
	// A malformed record whose dead letter the capped dead-letter topic
	// refuses: it goes there as headers alone.
	// Random text, so that its dead letter stays over the cap when the
	// producer compresses it.
	noise := make([]byte, 2250)
	rand.NewChaCha8([32]byte{}).Read(noise)
	big := kafka.Message{Key: []byte("S0/K000"), Value: fmt.Appendf(nil, `{"event_id":"big","qty":"%s`, base64.StdEncoding.AppendEncode(nil, noise))}
	faults := []networkFault{
		{name: "delay", inject: func(px *faultproxy.Proxy) <-chan struct{} { px.SetDelay(200 * time.Millisecond); return nil },
			end: func(px *faultproxy.Proxy) { time.Sleep(2 * time.Second); px.SetDelay(0) }},
		{name: "reset", inject: func(px *faultproxy.Proxy) <-chan struct{} { px.Reset(); return nil }},
		{name: "freeze past the session timeout", inject: func(px *faultproxy.Proxy) <-chan struct{} { px.Freeze(); return nil },
			end: func(px *faultproxy.Proxy) { time.Sleep(3 * time.Second); px.Thaw() }},
		produceFault("forecasts", faultproxy.Refuse, 4),
		produceFault("forecasts", faultproxy.Lose, 4),
		produceFault("forecasts", faultproxy.Cut, 4),
		produceFault(group+".changelog", faultproxy.Refuse, 4),
		produceFault(group+".changelog", faultproxy.Lose, 4),
		produceFault(group+".changelog", faultproxy.Cut, 4),
		{name: "dead-letter topic capped at 1000 bytes", inject: func(px *faultproxy.Proxy) <-chan struct{} {
			px.CapMessageSize("sales.dlq", 1000)
			return nil
		}},
	}

	dir := t.TempDir()
	run := func(name string) *instance {
		in := &instance{addr: kafkatest.FreeAddr(t)}
		in.child = startChild(t, filepath.Join(dir, name+".log"), "run", "--brokers", px.Addrs()[0], "--group", group,
			"--state-dir", filepath.Join(dir, name), "--http-addr", in.addr, "--session-timeout", "1s",
			"--max-future", "-1s", "--max-past", "-1s", "--batch-size", "50", "--model", "tsb", "--log-level", "debug")
		return in
	}
	a := run("a")
	defer a.child.kill()
	waitReady(t, a.child, a.addr)

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	chunk := (len(msgs) + len(faults)) / (len(faults) + 1)
	began := time.Now()
	for i, f := range faults {
		batch := msgs[i*chunk : (i+1)*chunk]
		if i == len(faults)-1 {
			batch = append(batch[:len(batch):len(batch)], big)
		}
		hit := f.inject(px)
		t.Logf("%v: %s", time.Since(began).Round(time.Millisecond), f.name)
		if err := w.WriteMessages(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		if hit != nil {
			select {
			case <-hit:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: the fault never hit\n%s", f.name, tail(a.child.log, 20))
			}
		}
		if f.end != nil {
			f.end(px)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := w.WriteMessages(ctx, msgs[len(faults)*chunk:]...); err != nil {
		t.Fatal(err)
	}
	malformed++ // big

	lastDay := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 8)
	for id, want := range truth {
		checkBuckets(t, id, seriesFrom(t, []*instance{a}, id, lastDay), want)
	}
	select {
	case <-a.child.done:
		t.Fatalf("the processor exited: %v\n%s", a.child.err, tail(a.child.log, 20))
	default:
	}

	// A second processor restores the state from the changelog alone.
	a.child.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.child.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM\n%s", tail(a.child.log, 20))
	}
	b := run("b")
	defer b.child.kill()
	for id, want := range truth {
		checkBuckets(t, id, seriesFrom(t, []*instance{b}, id, lastDay), want)
	}

	// Outputs: each series' forecast at every bucket close, at least once.
	seen := map[string]bool{}
	for _, m := range kafkatest.ReadTopic(t, brokers, "forecasts", 0, time.Second, 30*time.Second) {
		var f struct{ Series, Origin string }
		if err := json.Unmarshal(m.Value, &f); err != nil {
			t.Fatalf("forecast %s: %v", m.Value, err)
		}
		seen[f.Series+" "+f.Origin] = true
	}
	for id := range truth {
		for d := range 9 {
			origin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, d).Format(time.RFC3339)
			if !seen[id+" "+origin] {
				t.Errorf("no forecast of %s from %s", id, origin)
			}
		}
	}
	sources, headersOnly := map[string]bool{}, 0
	for _, m := range kafkatest.ReadTopic(t, brokers, "sales.dlq", 0, time.Second, 30*time.Second) {
		if headerOf(m, "reason") != "invalid_json" {
			continue
		}
		sources[headerOf(m, "source")] = true
		if len(m.Value) == 0 && headerOf(m, "original-value-bytes") == fmt.Sprint(len(big.Value)) {
			headersOnly++
		}
	}
	if len(sources) != malformed {
		t.Errorf("%d malformed records have dead letters, want %d", len(sources), malformed)
	}
	if headersOnly == 0 {
		t.Error("the record the capped dead-letter topic refused has no dead letter of headers alone")
	}
}

func headerOf(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestStateDiskFull runs the binary with its state directory on a small
// file system that another writer fills while events stream in. The
// processor must neither die of SIGBUS nor lose or double-count events:
// it holds its commits, says so (log, metric, readiness), and resumes
// when the space is freed. Filled again, it stops on SIGTERM without
// flushing Badger, and restarted after space is freed it has counted
// every event exactly once.
func TestStateDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk under the binary")
	}
	// A commit needs two memtables free; a filled disk leaves one and a
	// half.
	leave := uint64(state.DefaultConfig("").MemTableSize) * 3 / 2
	d := faultdisk.New(t, 256<<20)
	brokers := devCluster(t, 4)
	msgs, truth, _ := crashEvents(31, 40, 10)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "run.log")
	in := &instance{addr: kafkatest.FreeAddr(t)}
	args := []string{"run", "--brokers", brokers[0], "--state-dir", filepath.Join(d.Dir, "state"), "--http-addr", in.addr,
		"--session-timeout", "1s", "--max-future", "-1s", "--max-past", "-1s", "--batch-size", "50", "--model", "tsb"}
	in.child = startChild(t, logPath, args...)
	defer func() { in.child.kill() }()
	waitReady(t, in.child, in.addr)

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	third := len(msgs) / 3
	committed := func() float64 { return value(in.metrics(t), "trendstream_committed_offset") }
	waitCommitted := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for committed() < float64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("committed %v of %d records\n%s", committed(), n, tail(logPath, 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// stalled waits until the processor reports the full disk, then
	// checks that it commits nothing more.
	stalled := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for value(in.metrics(t), "trendstream_disk_full_partitions") == 0 {
			select {
			case <-in.child.done:
				t.Fatalf("the processor exited on a full disk: %v\n%s", in.child.err, tail(logPath, 20))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no full disk reported\n%s", tail(logPath, 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ready(in.addr) {
			t.Error("ready while commits wait for disk space")
		}
		before := committed()
		time.Sleep(time.Second)
		if after := committed(); after != before {
			t.Errorf("committed offsets moved from %v to %v on a full disk", before, after)
		}
		if !strings.Contains(tail(logPath, 200), "disk is full") {
			t.Error("the full disk is not logged")
		}
	}

	if err := w.WriteMessages(ctx, msgs[:third]...); err != nil {
		t.Fatal(err)
	}
	waitCommitted(third)
	release, err := d.Fill(leave)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(ctx, msgs[third:2*third]...); err != nil {
		t.Fatal(err)
	}
	stalled()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	waitCommitted(2 * third)
	waitReady(t, in.child, in.addr)

	// Full again: SIGTERM stops the processor without a SIGBUS.
	if release, err = d.Fill(leave); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(ctx, msgs[2*third:]...); err != nil {
		t.Fatal(err)
	}
	stalled()
	in.child.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.child.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM\n%s", tail(logPath, 20))
	}
	var exit *exec.ExitError
	if errors.As(in.child.err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("the processor died of %v\n%s", ws.Signal(), tail(logPath, 20))
		}
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	in.child = startChild(t, logPath, args...)
	lastDay := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 8)
	for id, want := range truth {
		checkBuckets(t, id, seriesFrom(t, []*instance{in}, id, lastDay), want)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "state")); err != nil {
		t.Fatal(err)
	}
}

// ready reports whether the instance's /readyz answers 200.
func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
