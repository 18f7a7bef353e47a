package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

// registeredMetrics returns the names of the metrics a processor registers
// (histograms with their _bucket, _sum and _count series).
func registeredMetrics(t testing.TB) []string {
	t.Helper()
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	cfg := stream.DefaultConfig()
	cfg.Brokers, cfg.Registerer = []string{"x"}, reg
	if _, err := stream.New(cfg, db); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName(), mf.GetName()+"_bucket", mf.GetName()+"_sum", mf.GetName()+"_count")
	}
	// Vectors without a child yet are not gathered: list them by their
	// descriptions.
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	nameRe := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := nameRe.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1], m[1]+"_bucket")
		}
	}
	return names
}

// TestDeployMetricsExist checks that every trendstream_* metric the alert
// rules and the Grafana dashboard use is one the processor exports.
func TestDeployMetricsExist(t *testing.T) {
	known := registeredMetrics(t)
	used := regexp.MustCompile(`trendstream_[a-z0-9_]+`)
	for _, path := range []string{"prometheus/alerts.yml", "grafana/dashboards/trendstream.json"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", path))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range used.FindAllString(string(b), -1) {
			n++
			if !slices.Contains(known, name) {
				t.Errorf("%s uses %s, which trendstream does not export", path, name)
			}
		}
		if n < 8 {
			t.Errorf("%s uses only %d metrics", path, n)
		}
	}
	var dash struct{ Panels []json.RawMessage }
	b, _ := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "dashboards", "trendstream.json"))
	if err := json.Unmarshal(b, &dash); err != nil || len(dash.Panels) < 10 {
		t.Errorf("dashboard: %v, %d panels", err, len(dash.Panels))
	}
}

// TestKubernetesManifests checks the StatefulSet's probes, volume and
// command against the binary, and that a PodDisruptionBudget exists.
func TestKubernetesManifests(t *testing.T) {
	kinds := map[string]map[string]any{}
	paths, _ := filepath.Glob(filepath.Join("..", "..", "deploy", "k8s", "*.yaml"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		kinds[doc["kind"].(string)] = doc
	}
	for _, k := range []string{"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap"} {
		if kinds[k] == nil {
			t.Errorf("no %s manifest", k)
		}
	}
	ss := kinds["StatefulSet"]
	if ss == nil {
		return
	}
	spec := ss["spec"].(map[string]any)
	if len(spec["volumeClaimTemplates"].([]any)) != 1 {
		t.Error("the StatefulSet has no volume claim for the state")
	}
	c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	probe := func(name string) string {
		return c[name].(map[string]any)["httpGet"].(map[string]any)["path"].(string)
	}
	if probe("readinessProbe") != "/readyz" || probe("livenessProbe") != "/healthz" {
		t.Errorf("probes: readiness %s, liveness %s", probe("readinessProbe"), probe("livenessProbe"))
	}
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	cmd, rest, err := newRoot().Find(args)
	if err != nil || cmd.Name() != args[0] {
		t.Fatalf("container args %v are not a subcommand", args)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("container args: %v", err)
	}
	cm := kinds["ConfigMap"]["data"].(map[string]any)
	for k := range cm {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, envPrefix+"_")), "_", "-")
		if !slices.Contains(knownKeys(newRoot()), flag) {
			t.Errorf("ConfigMap sets %s, which is no flag", k)
		}
	}
}
