package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/stream"

	"github.com/trendstream/trendstream/internal/kafkatest"
)

// seriesFrom returns series id as its partition's current owner among
// insts serves it, once its last closed bucket starts at lastDay, within
// 90 s.
func seriesFrom(t testing.TB, insts []*instance, id string, lastDay time.Time) stream.SeriesResponse {
	t.Helper()
	var got stream.SeriesResponse
	deadline := time.Now().Add(90 * time.Second)
	for {
		found := false
		for _, in := range insts {
			resp, err := http.Get("http://" + in.addr + "/v1/series/" + id)
			if err != nil {
				continue
			}
			if resp.StatusCode == http.StatusOK {
				found = json.NewDecoder(resp.Body).Decode(&got) == nil
			}
			resp.Body.Close()
			if found {
				break
			}
		}
		if found && len(got.Buckets) > 0 && got.Buckets[len(got.Buckets)-1].Start.Equal(lastDay) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("series %s never caught up: %+v\n%s", id, got.Buckets, tail(insts[0].child.log, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestScaleOutChaos runs three processor processes, each with its own state
// directory, in one group over an 8-partition topic while events stream in.
// One is SIGKILLed, later a fourth joins; partitions move and are restored
// from the changelog. At the end every series' buckets must equal the
// ground truth exactly, forecasts must have kept flowing for every
// partition, and SIGTERM must stop the instances and empty the group.
func TestScaleOutChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four processes for about a minute")
	}
	const partitions = 8
	brokers := devCluster(t, partitions)
	msgs, truth, _ := crashEvents(3, 64, 16)
	dir := t.TempDir()

	var mu sync.Mutex
	var insts []*instance
	start := func(i int) *instance {
		in := &instance{addr: kafkatest.FreeAddr(t)}
		in.child = startChild(t, filepath.Join(dir, fmt.Sprintf("run%d.log", i)), "run", "--brokers", brokers[0],
			"--group", "chaos", "--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)), "--http-addr", in.addr,
			"--session-timeout", "2s", "--max-future", "-1s", "--max-past", "-1s", "--batch-size", "100", "--model", "tsb")
		mu.Lock()
		insts = append(insts, in)
		mu.Unlock()
		return in
	}
	for i := range 3 {
		start(i)
	}
	defer func() {
		for _, in := range insts {
			in.child.kill()
		}
	}()

	// Watch forecasts: the arrival times per input partition.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals := make([][]time.Time, partitions)
	var amu sync.Mutex
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for ctx.Err() == nil {
			stream.Follow(ctx, stream.Connection{Brokers: brokers}, "forecasts", true, func(m stream.Message) {
				p := backtest.Partition(m.Key, partitions)
				amu.Lock()
				arrivals[p] = append(arrivals[p], time.Now())
				amu.Unlock()
			})
			time.Sleep(100 * time.Millisecond)
		}
	}()

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	began := time.Now()
	chunk := (len(msgs) + 99) / 100
	for i := 0; i < len(msgs); i += chunk {
		if err := w.WriteMessages(ctx, msgs[i:min(i+chunk, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
		switch i / chunk {
		case 30:
			t.Logf("%v: SIGKILL instance 1", time.Since(began).Round(time.Millisecond))
			insts[1].child.kill()
		case 60:
			t.Logf("%v: instance 3 joins", time.Since(began).Round(time.Millisecond))
			start(3)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%v: all %d records produced", time.Since(began).Round(time.Millisecond), len(msgs))

	// Each series is served by its partition's current owner.
	lastDay := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 14)
	live := []*instance{insts[0], insts[2], insts[3]}
	for id, want := range truth {
		checkBuckets(t, id, seriesFrom(t, live, id, lastDay), want)
	}

	// Forecasts kept flowing: the longest silence of any partition while
	// records were produced.
	amu.Lock()
	var worst time.Duration
	for p, ts := range arrivals {
		if len(ts) == 0 {
			t.Errorf("partition %d published no forecast", p)
			continue
		}
		gap := ts[0].Sub(began)
		for i := 1; i < len(ts); i++ {
			gap = max(gap, ts[i].Sub(ts[i-1]))
		}
		worst = max(worst, gap)
	}
	amu.Unlock()
	t.Logf("longest gap between forecasts of a partition: %v", worst.Round(time.Millisecond))
	if worst > 45*time.Second {
		t.Errorf("a partition published no forecast for %v", worst)
	}

	// SIGTERM: every instance finishes its batch, commits and leaves the
	// group within a bounded time.
	stopped := time.Now()
	for _, in := range live {
		in.child.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, in := range live {
		select {
		case <-in.child.done:
			if in.child.err != nil {
				t.Errorf("instance exited with %v after SIGTERM\n%s", in.child.err, tail(in.child.log, 8))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("instance still running 30s after SIGTERM\n%s", tail(in.child.log, 20))
		}
	}
	t.Logf("all instances stopped %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{"chaos"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Groups) != 1 || len(resp.Groups[0].Members) != 0 {
		t.Errorf("the group still has members after SIGTERM: %+v", resp.Groups)
	}
	cancel()
	<-followed
}

// TestPausedOwner runs two processes in one group while events stream in,
// and twice freezes one of them with SIGSTOP for four times the session
// timeout, as a VM freeze or a long GC pause would: the other takes its
// partitions over, and when the frozen one resumes with batches in
// flight, they must not win over its successor's. At the end every
// series' buckets equal the ground truth exactly.
func TestPausedOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes for half a minute")
	}
	brokers := devCluster(t, 4)
	msgs, truth, _ := crashEvents(11, 40, 10)
	dir := t.TempDir()
	var insts []*instance
	for i := range 2 {
		in := &instance{addr: kafkatest.FreeAddr(t)}
		in.child = startChild(t, filepath.Join(dir, fmt.Sprintf("run%d.log", i)), "run", "--brokers", brokers[0],
			"--group", "paused", "--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)), "--http-addr", in.addr,
			"--session-timeout", "1s", "--max-future", "-1s", "--max-past", "-1s", "--batch-size", "50", "--model", "tsb")
		defer in.child.kill()
		insts = append(insts, in)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chunk := (len(msgs) + 59) / 60
	for i := 0; i < len(msgs); i += chunk {
		if err := w.WriteMessages(ctx, msgs[i:min(i+chunk, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
		if n := i / chunk; n == 15 || n == 40 {
			frozen := insts[n%2]
			frozen.child.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(4 * time.Second)
			frozen.child.cmd.Process.Signal(syscall.SIGCONT)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastDay := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 8)
	for id, want := range truth {
		got := seriesFrom(t, insts, id, lastDay)
		checkBuckets(t, id, got, want)
	}
	for _, in := range insts {
		select {
		case <-in.child.done:
			t.Errorf("an instance exited: %v\n%s", in.child.err, tail(in.child.log, 20))
		default:
		}
	}
}
