package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// TestComposeFile loads docker-compose.yml with the compose-spec loader,
// which validates it against the Compose schema, and checks that every
// trendstream service runs a real subcommand with flags that subcommand
// accepts. No Docker engine is needed.
func TestComposeFile(t *testing.T) {
	root := filepath.Join("..", "..")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithName("trendstream"))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	if _, err := project.GetService("kafka"); err != nil {
		t.Fatal("no kafka service")
	}
	checked := 0
	for name, svc := range project.Services {
		if svc.Build == nil {
			continue
		}
		if svc.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s builds from %q, want deploy/Dockerfile", name, svc.Build.Dockerfile)
		}
		args := []string(svc.Command)
		if len(args) == 0 {
			t.Errorf("%s has no command", name)
			continue
		}
		cmd, rest, err := newRoot().Find(args)
		if err != nil || cmd.Name() != args[0] {
			t.Errorf("%s: %q is not a trendstream subcommand", name, args[0])
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%s: trendstream %s rejects its flags: %v", name, args[0], err)
		}
		if extra := cmd.Flags().Args(); len(extra) > 0 {
			t.Errorf("%s: stray arguments %q", name, extra)
		}
		if _, ok := svc.DependsOn["kafka"]; !ok {
			t.Errorf("%s does not wait for kafka", name)
		}
		checked++
	}
	if checked < 3 {
		t.Errorf("checked %d trendstream services, want two processors and the generator", checked)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		if _, err := project.GetService(name); err != nil {
			t.Errorf("no %s service", name)
		}
	}
	var commands []string
	for _, svc := range project.Services {
		if svc.Build != nil && len(svc.Command) > 0 {
			commands = append(commands, svc.Command[0])
		}
	}
	slices.Sort(commands)
	if !slices.Equal(commands, []string{"generate", "run", "run"}) {
		t.Errorf("trendstream services run %v, want two run and one generate", commands)
	}
	for _, m := range []string{"deploy/prometheus/prometheus.yml", "deploy/grafana/dashboards"} {
		if _, err := os.Stat(filepath.Join(root, m)); err != nil {
			t.Errorf("mounted %s: %v", m, err)
		}
	}
}
