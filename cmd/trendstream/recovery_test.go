package main

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkatest"
)

// TestRecoveryTime measures how long the only instance of a group takes,
// from its restart to every partition ready (/readyz), after a SIGTERM,
// after a SIGKILL, and after three quick SIGKILLs (each instance living
// 2 s), over 8 partitions of the embedded broker with the default 10 s
// session timeout, and logs the figures. It bounds the first two: a
// stopping instance leaves the group (kafka-go's ConsumerGroup.Close sends
// LeaveGroup), and a restarted one removes the member its killed
// predecessor left behind, so neither waits for a session to time out.
func TestRecoveryTime(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the binary and waits out session timeouts")
	}
	brokers := devCluster(t, 8)
	msgs, _, _ := crashEvents(5, 64, 6)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "sales", Balancer: &kafka.Murmur2Balancer{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	dir := t.TempDir()
	httpAddr, logPath := kafkatest.FreeAddr(t), filepath.Join(dir, "run.log")
	args := []string{"run", "--brokers", brokers[0], "--state-dir", filepath.Join(dir, "state"), "--http-addr", httpAddr,
		"--max-future", "-1s", "--max-past", "-1s", "--model", "tsb"}
	c := startChild(t, logPath, args...)
	waitReady(t, c, httpAddr)
	restart := func() time.Duration {
		t.Helper()
		started := time.Now()
		c = startChild(t, logPath, args...)
		waitReady(t, c, httpAddr)
		return time.Since(started)
	}

	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
	clean := restart()
	c.kill()
	crash := restart()
	c.kill()
	for range 2 {
		c = startChild(t, logPath, args...)
		time.Sleep(2 * time.Second)
		c.kill()
	}
	c = startChild(t, logPath, args...)
	time.Sleep(2 * time.Second)
	c.kill()
	kills := restart()
	defer c.kill()
	t.Logf("time from restart to all 8 partitions ready: after SIGTERM %v, after SIGKILL %v, after three quick SIGKILLs %v",
		clean.Round(10*time.Millisecond), crash.Round(10*time.Millisecond), kills.Round(10*time.Millisecond))
	for what, took := range map[string]time.Duration{"SIGTERM": clean, "SIGKILL": crash} {
		if took > 5*time.Second {
			t.Errorf("a restart after %s took %v to be ready", what, took)
		}
	}
}
