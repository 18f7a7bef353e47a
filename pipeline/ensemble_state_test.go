package pipeline

import (
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// TestLoadEnsembleState checks what a partition does with a series'
// stored ensemble state: one of the configured ensemble is restored, and
// one it cannot read (another encoding version, such as the version-1
// weekly-total scores, or other candidates) is dropped, so the series
// starts scoring afresh with the fallback instead of failing the load.
func TestLoadEnsembleState(t *testing.T) {
	part, err := window.NewPartition(window.Config{Width: window.Day})
	if err != nil {
		t.Fatal(err)
	}
	s, err := part.Add([]byte("S/A"), &window.Sale{Time: time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC), Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig().Forecasting
	cfg.Candidates, cfg.Fallback = []string{model.NameETS, model.NameTSB}, model.NameETS
	m, err := newRoster(&cfg, part.Spec())
	if err != nil {
		t.Fatal(err)
	}
	good, _ := m.ens.NewState().AppendBinary(nil)
	other, _ := model.NewEnsemble(model.EnsembleConfig{Candidates: 3})
	three, _ := other.NewState().AppendBinary(nil)
	v1 := append([]byte{1}, good[1:]...)

	for _, tc := range []struct {
		name   string
		value  []byte
		loaded bool
	}{
		{"current", good, true},
		{"version 1", v1, false},
		{"other candidates", three, false},
		{"absent", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := memStore{}
			if tc.value != nil {
				db[string(key(nil, 0, kindSelect, []byte(s.ID())))] = tc.value
			}
			clear(m.states)
			if err := m.loadSeries(db, 0, s); err != nil {
				t.Fatalf("loadSeries: %v", err)
			}
			if _, ok := m.states[s]; ok != tc.loaded {
				t.Errorf("state loaded %v, want %v", ok, tc.loaded)
			}
		})
	}
}
