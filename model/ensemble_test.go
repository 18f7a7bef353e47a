package model

import (
	"errors"
	"math"
	"testing"
)

func bandForecast(mean, lo, mid, hi float64, h int) *Forecast {
	f := &Forecast{Mean: make([]float64, h), Q: make([]float64, 3*h), Levels: DefaultLevels}
	for i := range h {
		f.Mean[i] = mean
		f.Q[3*i], f.Q[3*i+1], f.Q[3*i+2] = lo, mid, hi
	}
	return f
}

// TestEnsemble feeds a series that sells 2 a day to three candidates: 0
// forecasts a mean of 2 with a wide band, 1 a mean of 3 with a tight band
// around 2, 2 (the fallback) a mean of 1.
func TestEnsemble(t *testing.T) {
	e, err := NewEnsemble(EnsembleConfig{Candidates: 3, Fallback: 2, Window: 7, MinScores: 5})
	if err != nil {
		t.Fatal(err)
	}
	st := e.NewState()
	fcs := []*Forecast{bandForecast(2, 0, 2, 6, 28), bandForecast(3, 1.5, 2, 2.5, 28), bandForecast(1, 0, 1, 2, 28)}
	all := []bool{true, true, true}
	cfg := Config{}
	cfg.Validate()
	dst := NewForecast(cfg)
	weights := make([]float64, 7)
	var recent []float64
	var mix Mix
	for b := int64(100); b < 130; b++ {
		recent = append(recent, 2)
		mix = e.Update(st, b, recent, fcs, all, dst, weights)
		// Next-bucket quantiles are scored from bucket 101, so the fifth
		// score comes at 105; totals from 107, the fifth at 111.
		switch {
		case b < 105 && (mix.Weights[2] != 1 || mix.Quantiles != 2):
			t.Fatalf("bucket %d: %+v before any score, want the fallback alone", b, mix)
		case b >= 105 && b < 111 && (mix.Weights[2] != 1 || mix.Quantiles != 1):
			t.Fatalf("bucket %d: %+v, want the fallback's mean and candidate 1's band", b, mix)
		}
	}
	if mix.Errors[0] != 0 || mix.Errors[1] != 7 || mix.Errors[2] != 7 || mix.Errors[3] != 0 {
		t.Errorf("weekly total errors %v, want 0, 7, 7 and 0 for the combination", mix.Errors)
	}
	// Totals: candidate 0 is exact (error 0) and takes the whole mean;
	// candidate 1 has the least pinball loss and gives the band.
	if math.Abs(mix.Weights[0]-1) > 1e-6 || mix.Quantiles != 1 {
		t.Fatalf("mix %+v, want mean from 0 and quantiles from 1", mix)
	}
	if math.Abs(dst.Mean[0]-2) > 1e-6 || dst.Quantile(0, 0) != 1.5 || dst.Quantile(0, 2) != 2.5 {
		t.Errorf("combined step 0: mean %v, band %v-%v", dst.Mean[0], dst.Quantile(0, 0), dst.Quantile(0, 2))
	}
	if err := dst.Check(); err != nil {
		t.Error(err)
	}
	if got := mix.Describe([]string{"a", "b", "c"}); got != "mean a 1.00; quantiles b" {
		t.Errorf("Describe = %q", got)
	}
	// Ineligible candidates take no part.
	mix = e.Update(st, 130, append(recent, 2), fcs, []bool{false, true, true}, dst, weights)
	if mix.Weights[0] != 0 || mix.Quantiles != 1 {
		t.Errorf("mix with candidate 0 ineligible: %+v", mix)
	}

	b, _ := st.AppendBinary(nil)
	back, err := e.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.AppendBinary(nil)
	if string(b) != string(b2) {
		t.Error("state does not round-trip")
	}
	other, _ := NewEnsemble(EnsembleConfig{Candidates: 2})
	for name, tc := range map[string]struct {
		e *Ensemble
		b []byte
	}{"other ensemble": {other, b}, "truncated": {e, b[:len(b)-3]}, "empty": {e, nil}} {
		if _, err := tc.e.DecodeState(tc.b); !errors.Is(err, ErrEnsembleState) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEnsembleConfig(t *testing.T) {
	for _, cfg := range []EnsembleConfig{{}, {Candidates: 2, Fallback: 2}, {Candidates: 2, Alpha: 2}, {Candidates: 2, Window: -1}} {
		if _, err := NewEnsemble(cfg); err == nil {
			t.Errorf("NewEnsemble(%+v) succeeded", cfg)
		}
	}
}
