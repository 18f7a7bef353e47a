package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs the real binary's demo without a terminal for 22 seconds:
// it must show forecasts (the first ones come from the back-filled
// history within seconds), count dead letters and duplicates, and exit
// cleanly.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 22 seconds")
	}
	cmd := exec.Command(binary(t), "demo", "--duration", "22s", "--listen", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--stores", "2", "--skus", "5", "--log-level", "warn")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	text := string(out)
	row := regexp.MustCompile(`S0\d/SKU-\d{4}\s+\w{3} \d{2}\s+[\d.]+\s+[\d.]+\s+[\d.]+-[\d.]+\s+[↑↓→]`)
	if !row.MatchString(text) {
		t.Fatalf("no forecast rows in the demo's output:\n%s", text)
	}
	plan := regexp.MustCompile(`S0\d/SKU-\d{4}\s+\w{3} \d{2}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\+\d+\s+\d+`)
	if !plan.MatchString(text) {
		t.Errorf("no replenishment row with a stock position and an order in the demo's output:\n%s", text)
	}
	for _, want := range []string{"forecasts ", "duplicates ", "dead letters: ", "trending (", "replenishment ("} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if regexp.MustCompile(`forecasts 0 `).MatchString(text[strings.LastIndex(text, "series"):]) {
		t.Errorf("the last view shows no forecasts:\n%s", text)
	}
}
