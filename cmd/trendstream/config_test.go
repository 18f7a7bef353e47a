package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigPrecedence checks the documented order: flag, then
// TRENDSTREAM_* variable, then config file, then default.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trendstream.yaml")
	os.WriteFile(path, []byte("lateness: 2h\ngroup: from-file\noutput-topic: file-forecasts\nspeed: 7\n"), 0o644)
	t.Setenv("TRENDSTREAM_GROUP", "from-env")
	t.Setenv("TRENDSTREAM_BUCKET", "1h")

	root := newRoot()
	cmd, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags([]string{"--config", path, "--lateness", "3h"}); err != nil {
		t.Fatal(err)
	}
	v, err := settings(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetDuration("lateness"); got != 3*time.Hour {
		t.Errorf("lateness = %v, want the flag's 3h over the file's 2h", got)
	}
	for key, want := range map[string]string{
		"group":        "from-env",       // environment beats file
		"bucket":       "1h",             // environment beats default
		"output-topic": "file-forecasts", // file beats default
		"dlq-topic":    "sales.dlq",      // default
	} {
		if got := v.GetString(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// A key of another subcommand (generate's speed) is allowed; an unknown
	// one is an error.
	os.WriteFile(path, []byte("lateness: 2h\nlatenes: 1h\n"), 0o644)
	if _, err := settings(cmd); err == nil || !strings.Contains(err.Error(), "latenes") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

// TestForecastingFlags checks that the forecasting flags reach the
// stream.Config they configure.
func TestForecastingFlags(t *testing.T) {
	root := newRoot()
	cmd, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--model", "lstm", "--candidates", "lstm,ma28", "--fallback", "ma28",
		"--learner-layers", "1", "--learner-hidden", "16", "--learner-window", "28", "--learner-lr", "0.01",
		"--learner-minibatch", "64", "--learner-epochs", "2", "--learner-min-batches", "3", "--learner-decay-steps", "500", "--learner-replay", "4", "--learner-seed", "9",
		"--learner-min-steps", "7", "--learner-refresh", "3", "--learner-average", "0.9", "--checkpoint-every", "5", "--horizon", "14"}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	v, err := settings(cmd)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := processorConfig(v, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Forecasting
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"Published", f.Published, "lstm"},
		{"Candidates", strings.Join(f.Candidates, ","), "lstm,ma28"},
		{"Fallback", f.Fallback, "ma28"},
		{"Learner.Layers", f.Learner.Layers, 1},
		{"Learner.Hidden", f.Learner.Hidden, 16},
		{"Learner.Window", f.Learner.Window, 28},
		{"Learner.LearningRate", f.Learner.LearningRate, 0.01},
		{"Learner.MiniBatch", f.Learner.MiniBatch, 64},
		{"Learner.StepsPerClose", f.Learner.StepsPerClose, 2},
		{"Learner.Replay", f.Learner.Replay, 4},
		{"Learner.MinBatches", f.Learner.MinBatches, 3},
		{"Learner.DecaySteps", f.Learner.DecaySteps, 500},
		{"Learner.Seed", f.Learner.Seed, uint64(9)},
		{"Learner.Refresh", f.Learner.Refresh, 3},
		{"Learner.Average", f.Learner.Average, 0.9},
		{"LearnerMinSteps", f.LearnerMinSteps, int64(7)},
		{"Model.Horizon", f.Model.Horizon, 14},
		{"CheckpointEvery", f.CheckpointEvery, 5},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestLearnerAverageFlag checks that --learner-average 0 reaches
// LearnerConfig as 0, which turns averaging off, and that values outside
// [0, 1) are refused.
func TestLearnerAverageFlag(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		want    float64
		wantErr string
	}{
		{arg: "0.99", want: 0.99},
		{arg: "0", want: 0},
		{arg: "1", wantErr: "--learner-average 1 outside [0, 1)"},
		{arg: "-0.5", wantErr: "--learner-average -0.5 outside [0, 1)"},
		{arg: "NaN", wantErr: "--learner-average NaN outside [0, 1)"},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			cmd, _, err := newRoot().Find([]string{"run"})
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags([]string{"--learner-average", tc.arg}); err != nil {
				t.Fatal(err)
			}
			v, err := settings(cmd)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := processorConfig(v, slog.New(slog.DiscardHandler))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Forecasting.Learner.Average; got != tc.want {
				t.Fatalf("Learner.Average = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSettingsTypes checks that an environment variable or config file
// value that does not parse as its flag's type is an error naming the
// setting, not a silent zero.
func TestSettingsTypes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		file    string
		wantErr string
	}{
		{name: "valid values", env: map[string]string{"TRENDSTREAM_LEARNER_AVERAGE": "0.99", "TRENDSTREAM_LEARNER_HIDDEN": "16"}, file: "lateness: 2h\nchangelog: false\n"},
		{name: "float typo", env: map[string]string{"TRENDSTREAM_LEARNER_AVERAGE": "0,99"}, wantErr: "--learner-average from TRENDSTREAM_LEARNER_AVERAGE or the config file: 0,99 is not a valid float64"},
		{name: "word for a float", env: map[string]string{"TRENDSTREAM_LEARNER_AVERAGE": "off"}, wantErr: "--learner-average"},
		{name: "int", env: map[string]string{"TRENDSTREAM_LEARNER_HIDDEN": "12x"}, wantErr: "--learner-hidden"},
		{name: "negative uint64", env: map[string]string{"TRENDSTREAM_LEARNER_SEED": "-3"}, wantErr: "--learner-seed"},
		{name: "duration in the file", file: "lateness: soon\n", wantErr: "--lateness from TRENDSTREAM_LATENESS or the config file: soon is not a valid duration"},
		{name: "bool in the file", file: "changelog: maybe\n", wantErr: "--changelog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd, _, err := newRoot().Find([]string{"run"})
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "trendstream.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"--config", path}
			}
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			_, err = settings(cmd)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
