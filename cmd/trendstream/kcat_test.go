package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/trendstream/trendstream/internal/kafkatest"
)

// TestKcatClient drives the real binaries (broker and run) with kcat as an
// independent Kafka client: kcat produces events, including malformed
// ones, and reads back forecasts, which must match the forecast JSON
// Schema, and dead letters with their reason headers.
func TestKcatClient(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	dir := t.TempDir()
	brokerAddr, httpAddr := kafkatest.FreeAddr(t), kafkatest.FreeAddr(t)
	broker := startChild(t, filepath.Join(dir, "broker.log"), "broker", "--listen", brokerAddr, "--partitions", "3")
	defer broker.kill()
	run := startChild(t, filepath.Join(dir, "run.log"), "run", "--brokers", brokerAddr, "--state-dir", filepath.Join(dir, "state"),
		"--http-addr", httpAddr, "--partitions", "3", "--max-future", "-1s", "--max-past", "-1s")
	defer run.kill()
	waitReady(t, run, httpAddr)

	var in bytes.Buffer
	for day := 1; day <= 5; day++ {
		for _, sku := range []string{"A", "B"} {
			fmt.Fprintf(&in, "S1/%s\t{\"event_id\":\"%s-%d\",\"store\":\"S1\",\"sku\":\"%s\",\"ts\":\"2024-05-0%dT12:00:00Z\",\"qty\":%d,\"price\":1.5}\n",
				sku, sku, day, sku, day, day)
		}
	}
	in.WriteString("S1/A\tnot json\n")
	in.WriteString("S1/B\t{\"event_id\":\"x\",\"store\":\"S1\",\"sku\":\"B\",\"ts\":\"2024-05-05T12:00:00Z\",\"qty\":-1}\n")
	produce := exec.Command(kcat, "-P", "-b", brokerAddr, "-t", "sales", "-K", "\t", "-X", "partitioner=murmur2_random")
	produce.Stdin = &in
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile(filepath.Join("..", "..", "schema", "forecast.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Days 1..4 close for both series: 8 forecasts.
	lines := consumeKcat(t, kcat, brokerAddr, "forecasts", "%k\t%s\n", 8)
	for _, l := range lines {
		key, value, _ := strings.Cut(l, "\t")
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(value))
		if err != nil {
			t.Fatalf("forecast is not JSON: %v\n%s", err, value)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("forecast breaks the schema: %v\n%s", err, value)
		}
		var f struct{ Series string }
		json.Unmarshal([]byte(value), &f)
		if f.Series != key {
			t.Errorf("forecast for %q keyed %q", f.Series, key)
		}
	}
	dlq := consumeKcat(t, kcat, brokerAddr, "sales.dlq", "%h\t%s\n", 2)
	got := strings.Join(dlq, "\n")
	for _, want := range []string{"reason=invalid_json", "not json", "reason=qty_out_of_range"} {
		if !strings.Contains(got, want) {
			t.Errorf("dead letters lack %q:\n%s", want, got)
		}
	}
}

// consumeKcat reads a topic from the beginning with kcat until it has n
// lines or 30 seconds pass.
func consumeKcat(t testing.TB, kcat, broker, topic, format string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command(kcat, "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-f", format)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err == nil && len(out) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcat read %d records of %s, want %d (err %v):\n%s", len(lines), topic, n, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
