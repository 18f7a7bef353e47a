package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configTable renders the configuration table of a subcommand as the README
// shows it: flag, environment variable, default and description.
func configTable(cmd *cobra.Command) string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | description |\n|---|---|---|---|\n")
	row := func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		env := envName(f.Name)
		def := f.DefValue
		if def == "" {
			def = " "
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, env, def, f.Usage)
	}
	cmd.Flags().VisitAll(row)
	cmd.InheritedFlags().VisitAll(row)
	return b.String()
}

var update = flag.Bool("update", false, "rewrite README.md's configuration tables from the code")

// TestREADMEConfigTables checks that every table between
// <!-- config-table:NAME --> and <!-- /config-table --> in README.md matches
// the flags of subcommand NAME, and that run's table exists.
func TestREADMEConfigTables(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<!-- config-table:(\w+) -->\n(.*?)<!-- /config-table -->`)
	if *update {
		readme = re.ReplaceAllFunc(readme, func(m []byte) []byte {
			name := re.FindSubmatch(m)[1]
			return []byte(fmt.Sprintf("<!-- config-table:%s -->\n%s<!-- /config-table -->", name, configTable(mustFind(string(name)))))
		})
		if err := os.WriteFile(filepath.Join("..", "..", "README.md"), readme, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		name, got := m[1], m[2]
		cmd, _, err := newRoot().Find([]string{name})
		if err != nil || cmd.Name() != name {
			t.Errorf("README has a table for unknown subcommand %q", name)
			continue
		}
		found[name] = true
		if want := configTable(cmd); got != want {
			t.Errorf("README's %s table is out of date (go test ./cmd/trendstream -run README -update); it should read:\n%s", name, want)
		}
	}
	if !found["run"] {
		t.Errorf("README lacks <!-- config-table:run --> ... <!-- /config-table -->; the table reads:\n%s", configTable(mustFind("run")))
	}
}

func mustFind(name string) *cobra.Command {
	cmd, _, err := newRoot().Find([]string{name})
	if err != nil {
		panic(err)
	}
	return cmd
}

// TestREADMECommands checks that the README's two set-up commands are
// there.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go run ./cmd/trendstream demo", "go test ./..."} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
}

// TestREADMERunbook checks that the README's operations runbook has a row
// for every alert in deploy/prometheus/alerts.yml and none for an alert
// that does not exist.
func TestREADMERunbook(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllSubmatch(rules, -1) {
		alerts = append(alerts, string(m[1]))
	}
	var rows []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(Trendstream\\w+)` \\|").FindAllSubmatch(readme, -1) {
		rows = append(rows, string(m[1]))
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts found in alerts.yml")
	}
	slices.Sort(alerts)
	slices.Sort(rows)
	if !slices.Equal(alerts, rows) {
		t.Errorf("runbook rows %v, alerts %v", rows, alerts)
	}
}
