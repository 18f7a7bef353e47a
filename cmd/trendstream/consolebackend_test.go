package main

import (
	"maps"
	"testing"

	"github.com/trendstream/trendstream/model"
)

// TestParseMix reads auto's model_version as model.Mix.Describe writes it,
// and refuses other versions.
func TestParseMix(t *testing.T) {
	names := []string{"lstm", "ets", "tsb"}
	tests := []struct {
		name      string
		version   string
		weights   map[string]float64
		quantiles string
	}{
		{"described mix", model.Mix{Weights: []float64{0.62, 0.38, 0.001}, Quantiles: 2}.Describe(names),
			map[string]float64{"lstm": 0.62, "ets": 0.38}, "tsb"},
		{"one candidate", model.Mix{Weights: []float64{0, 1, 0}, Quantiles: 1}.Describe(names), map[string]float64{"ets": 1}, "ets"},
		{"a learner's version", "lstm-2x64@3f2a", nil, ""},
		{"no quantiles part", "mean ets 1.00", nil, ""},
		{"odd fields", "mean ets; quantiles ets", nil, ""},
		{"bad weight", "mean ets x; quantiles ets", nil, ""},
		{"empty", "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, q := parseMix(tc.version)
			if !maps.Equal(w, tc.weights) || q != tc.quantiles || (w == nil) != (tc.weights == nil) {
				t.Errorf("parseMix(%q) = %v, %q; want %v, %q", tc.version, w, q, tc.weights, tc.quantiles)
			}
		})
	}
}
