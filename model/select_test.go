package model

import (
	"errors"
	"testing"
)

func constForecast(v float64, h int) *Forecast {
	f := &Forecast{Mean: make([]float64, h), Q: make([]float64, 3*h), Levels: DefaultLevels}
	for i := range f.Mean {
		f.Mean[i] = v
	}
	return f
}

func TestSelector(t *testing.T) {
	sel, err := NewSelector(SelectorConfig{Candidates: 3, Fallback: 2, Window: 7, MinScores: 5})
	if err != nil {
		t.Fatal(err)
	}
	st := sel.NewSelection()
	// The series sells 2 a day. Candidate 0 forecasts 2, candidate 1
	// forecasts 5, candidate 2 (the fallback) forecasts 1.
	fcs := []*Forecast{constForecast(2, 28), constForecast(5, 28), constForecast(1, 28)}
	all := []bool{true, true, true}
	var recent []float64
	var got []int
	for b := int64(100); b < 130; b++ {
		recent = append(recent, 2)
		got = append(got, sel.Update(st, b, recent, fcs, all))
	}
	// Scores start at bucket 107 (forecasts of 100..106 come due); the
	// fifth score arrives at 111.
	for i, c := range got {
		want := 2
		if int64(100+i) >= 111 {
			want = 0
		}
		if c != want {
			t.Fatalf("bucket %d: chose %d, want %d (all: %v)", 100+i, c, want, got)
		}
	}
	// An ineligible candidate is never chosen.
	if c := sel.Update(st, 130, append(recent, 2), fcs, []bool{false, true, true}); c != 2 {
		t.Errorf("chose %d with candidate 0 ineligible, want 2 (less error than 1)", c)
	}
	// Round trip.
	b, _ := st.AppendBinary(nil)
	back, err := sel.DecodeSelection(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.AppendBinary(nil)
	if string(b) != string(b2) {
		t.Error("selection does not round-trip")
	}
	other, _ := NewSelector(SelectorConfig{Candidates: 2})
	for name, bad := range map[string][]byte{"other selector": b, "truncated": b[:len(b)-3], "empty": nil} {
		s := sel
		if name == "other selector" {
			s = other
		}
		if _, err := s.DecodeSelection(bad); !errors.Is(err, ErrSelection) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSelectorSkipsStaleForecasts checks that a forecast is only scored
// when it was made exactly a window before.
func TestSelectorSkipsStaleForecasts(t *testing.T) {
	sel, _ := NewSelector(SelectorConfig{Candidates: 1, Window: 2, MinScores: 1})
	st := sel.NewSelection()
	f := []*Forecast{constForecast(1, 4)}
	sel.Update(st, 10, []float64{1}, f, []bool{true})
	sel.Update(st, 14, []float64{1, 1}, f, []bool{true}) // slot of 10, made 4 buckets ago: not scored
	if st.scores[0] != 0 {
		t.Errorf("scored a stale forecast")
	}
	sel.Update(st, 16, []float64{1, 1}, f, []bool{true})
	if st.scores[0] != 1 || st.err[0] != 0 {
		t.Errorf("scores %v err %v", st.scores, st.err)
	}
}

func TestSelectorConfig(t *testing.T) {
	for _, cfg := range []SelectorConfig{{}, {Candidates: 2, Fallback: 2}, {Candidates: 2, Alpha: 2}, {Candidates: 2, Window: -1}} {
		if _, err := NewSelector(cfg); err == nil {
			t.Errorf("NewSelector(%+v) succeeded", cfg)
		}
	}
}
