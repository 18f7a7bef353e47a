package model

import (
	"bytes"
	"errors"
	"math"
	"slices"
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

// TestEnsemble feeds a series that sells 2 a day to three candidates with
// flat forecasts: 0 forecasts 2 (exact) with a wide band, 1 forecasts 3
// (error 1) with a tight band around 2 (the least pinball loss), 2 (the
// fallback) forecasts 4 (error 2).
func TestEnsemble(t *testing.T) {
	tests := []struct {
		name  string
		cfg   EnsembleConfig
		ready int64 // first bucket at which scored candidates take part
	}{
		{"default horizons", EnsembleConfig{Candidates: 3, Fallback: 2, MinScores: 5, Power: 4}, 100 + 28 + 4},
		{"horizons 1 and 3", EnsembleConfig{Candidates: 3, Fallback: 2, MinScores: 5, Power: 4, Horizons: []int{1, 3}}, 100 + 3 + 4},
		{"horizons 1, 2, 4 and 7", EnsembleConfig{Candidates: 3, Fallback: 2, MinScores: 5, Power: 4, Horizons: []int{1, 2, 4, 7}}, 100 + 7 + 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEnsemble(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := e.NewState()
			fcs := []*Forecast{bandForecast(2, 0, 2, 6, 28), bandForecast(3, 1.5, 2, 2.5, 28), bandForecast(4, 3, 4, 5, 28)}
			all := []bool{true, true, true}
			cfg := Config{}
			cfg.Validate()
			dst := NewForecast(cfg)
			scratch := make([]float64, 7)
			var recent []float64
			var mix Mix
			for b := int64(100); b < 140; b++ {
				recent = append(recent, 2)
				mix = e.Update(st, b, recent, fcs, all, dst, scratch)
				if b < tc.ready && (mix.Weights[2] != 1 || mix.Quantiles != 2) {
					t.Fatalf("bucket %d: %+v before every horizon is scored 5 times, want the fallback alone", b, mix)
				}
				if b == tc.ready && (mix.Weights[0] != 1 || mix.Quantiles != 1) {
					t.Fatalf("bucket %d: %+v, want the exact candidate's mean and candidate 1's band", b, mix)
				}
			}
			if mix.Errors[0] != 0 || mix.Errors[1] != 7 || mix.Errors[2] != 14 || mix.Errors[3] != 0 {
				t.Errorf("weekly total errors %v, want 0, 7, 14 and 0 for the combination", mix.Errors)
			}
			if math.Abs(dst.Mean[0]-2) > 1e-12 || dst.Quantile(0, 0) != 1.5 || dst.Quantile(0, 2) != 2.5 {
				t.Errorf("combined step 0: mean %v, band %v-%v, want candidate 0's mean and 1's band", dst.Mean[0], dst.Quantile(0, 0), dst.Quantile(0, 2))
			}
			if err := dst.Check(); err != nil {
				t.Error(err)
			}
			if got := mix.Describe([]string{"a", "b", "c"}); got != "mean a 1.00; quantiles b" {
				t.Errorf("Describe = %q", got)
			}

			// Without the exact candidate, the weights are error^-Power,
			// normalised: 1 and (1/2)^4.
			mix = e.Update(st, 140, append(recent, 2), fcs, []bool{false, true, true}, dst, scratch)
			if w := mix.Weights; w[0] != 0 || math.Abs(w[1]-16.0/17) > 1e-12 || math.Abs(w[2]-1.0/17) > 1e-12 || mix.Quantiles != 1 {
				t.Errorf("mix with candidate 0 ineligible: %+v, want weights 0, 16/17, 1/17 and quantiles from 1", mix)
			}
			if want := 3*16.0/17 + 4.0/17; math.Abs(dst.Mean[5]-want) > 1e-12 {
				t.Errorf("combined mean %v, want %v", dst.Mean[5], want)
			}
		})
	}
}

// TestEnsembleGap checks that forecasts are scored only against the
// buckets they were made for: after a gap in a series' closes, nothing
// stale is scored.
func TestEnsembleGap(t *testing.T) {
	e, err := NewEnsemble(EnsembleConfig{Candidates: 2, MinScores: 1, Horizons: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	st := e.NewState()
	fcs := []*Forecast{bandForecast(1, 0, 1, 2, 7), bandForecast(5, 4, 5, 6, 7)}
	dst := &Forecast{Mean: make([]float64, 7), Q: make([]float64, 21)}
	scratch := make([]float64, 5)
	all := []bool{true, true}
	e.Update(st, 10, []float64{5}, fcs, all, dst, scratch)
	if mix := e.Update(st, 12, []float64{5, 0, 5}, fcs, all, dst, scratch); mix.Weights[0] != 1 {
		t.Fatalf("after a gap: %+v, want the fallback (nothing scored)", mix)
	}
	if mix := e.Update(st, 13, []float64{5, 0, 5, 5}, fcs, all, dst, scratch); mix.Weights[1] != 1 {
		t.Fatalf("the next bucket: %+v, want candidate 1 (exact)", mix)
	}
}

// TestEnsembleState checks the encoding: a state round-trips, and the
// encodings of another ensemble, of version 1 and damaged ones are
// refused with ErrEnsembleState, which callers take as a reason to start
// a series afresh.
func TestEnsembleState(t *testing.T) {
	e, _ := NewEnsemble(EnsembleConfig{Candidates: 3, Fallback: 1})
	st := e.NewState()
	fcs := []*Forecast{bandForecast(2, 0, 2, 6, 28), bandForecast(3, 1, 3, 5, 28), bandForecast(4, 3, 4, 5, 28)}
	dst := &Forecast{Mean: make([]float64, 28), Q: make([]float64, 84)}
	scratch := make([]float64, 7)
	var recent []float64
	for b := range int64(60) {
		recent = append(recent, float64(b%3))
		e.Update(st, b, recent, fcs, []bool{true, true, true}, dst, scratch)
	}
	b, _ := st.AppendBinary(nil)
	back, err := e.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := back.AppendBinary(nil); !bytes.Equal(b, b2) {
		t.Error("state does not round-trip")
	}
	// The decoded state carries on exactly like the original.
	m1 := e.Update(st, 60, append(recent, 1), fcs, []bool{true, true, true}, dst, scratch)
	w1 := append([]float64(nil), m1.Weights...)
	m2 := e.Update(back, 60, append(recent, 1), fcs, []bool{true, true, true}, dst, scratch)
	for i := range w1 {
		if w1[i] != m2.Weights[i] {
			t.Fatalf("decoded state weighs %v, original %v", m2.Weights, w1)
		}
	}

	three, _ := NewEnsemble(EnsembleConfig{Candidates: 3, Horizons: []int{1, 2, 3, 7}})
	two, _ := NewEnsemble(EnsembleConfig{Candidates: 2})
	v1 := append([]byte{1}, b[1:]...)
	for _, tc := range []struct {
		name string
		e    *Ensemble
		b    []byte
	}{
		{"other candidates", two, b},
		{"other horizons", three, b},
		{"version 1", e, v1},
		{"truncated", e, b[:len(b)-3]},
		{"trailing", e, append(b[:len(b):len(b)], 0)},
		{"empty", e, nil},
	} {
		if _, err := tc.e.DecodeState(tc.b); !errors.Is(err, ErrEnsembleState) {
			t.Errorf("%s: %v, want ErrEnsembleState", tc.name, err)
		}
	}
}

func TestEnsembleConfig(t *testing.T) {
	for _, cfg := range []EnsembleConfig{
		{},
		{Candidates: 2, Fallback: 2},
		{Candidates: 2, Alpha: 2},
		{Candidates: 2, Window: -1},
		{Candidates: 2, Power: -1},
		{Candidates: 2, Horizons: []int{0, 1}},
		{Candidates: 2, Horizons: []int{2, 2}},
		{Candidates: 2, Horizons: []int{1, 367}},
	} {
		if _, err := NewEnsemble(cfg); err == nil {
			t.Errorf("NewEnsemble(%+v) succeeded", cfg)
		}
	}
}

// ensembleBench is a series of five candidates with 28-step forecasts,
// warmed so that every horizon is scored.
func ensembleBench() (e *Ensemble, st *EnsembleState, fcs []*Forecast, all []bool, dst *Forecast, scratch, recent []float64) {
	e, _ = NewEnsemble(EnsembleConfig{Candidates: 5})
	st = e.NewState()
	for c := range 5 {
		fcs = append(fcs, bandForecast(float64(c), 0, float64(c), 2*float64(c), 28))
	}
	all = []bool{true, true, true, true, true}
	dst = &Forecast{Mean: make([]float64, 28), Q: make([]float64, 84)}
	scratch = make([]float64, 11)
	recent = []float64{1, 2, 3, 2, 1, 2, 3}
	for b := range int64(60) {
		e.Update(st, b, recent, fcs, all, dst, scratch)
	}
	return
}

// TestEnsembleUpdateAllocs checks that Update, on the path of every
// series at every close, does not allocate.
func TestEnsembleUpdateAllocs(t *testing.T) {
	e, st, fcs, all, dst, scratch, recent := ensembleBench()
	b := int64(60)
	if n := testing.AllocsPerRun(100, func() {
		e.Update(st, b, recent, fcs, all, dst, scratch)
		b++
	}); n != 0 {
		t.Errorf("Update allocates %v times per call", n)
	}
}

// TestEnsembleDeterministic checks that the same series and forecasts
// give bit-identical combinations.
func TestEnsembleDeterministic(t *testing.T) {
	names := []string{NameETS, NameTSB, NameMA28, NameSeasonalNaive}
	for _, p := range ensembleProfiles {
		a := ensembleScore(t, p, names, EnsembleConfig{}, 3)
		b := ensembleScore(t, p, names, EnsembleConfig{}, 3)
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
				t.Errorf("%s: scores %v, then %v", p.name, a, b)
				break
			}
		}
	}
}

func BenchmarkEnsembleUpdate(b *testing.B) {
	e, st, fcs, all, dst, scratch, recent := ensembleBench()
	b.ReportAllocs()
	bucket := int64(60)
	for b.Loop() {
		e.Update(st, bucket, recent, fcs, all, dst, scratch)
		bucket++
	}
}

func TestEnsembleHorizons(t *testing.T) {
	for _, tc := range []struct {
		steps int
		want  []int
	}{
		{28, []int{1, 7, 14, 21, 28}},
		{90, []int{1, 7, 14, 21, 28}},
		{14, []int{1, 7, 14}},
		{6, []int{1}},
		{1, []int{1}},
	} {
		if got := EnsembleHorizons(tc.steps); !slices.Equal(got, tc.want) {
			t.Errorf("EnsembleHorizons(%d) = %v, want %v", tc.steps, got, tc.want)
		}
	}
}
