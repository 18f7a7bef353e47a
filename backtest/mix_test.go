package backtest

import (
	"context"
	"reflect"
	"testing"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
)

func backtestMix(t testing.TB, m *source.M5, partitions int, mix pipeline.MixConfig) *Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Origin, cfg.Partitions, cfg.Rolling, cfg.Mix = m.Date(m.Train-1), partitions, 30, mix
	res, err := Run(context.Background(), cfg, m.Events())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestMixDeterministic replays the same history with 8 partitions whose
// learners mix, three times, and expects bit-identical scores, though the
// partitions run on their own goroutines and reach their mixing rounds in
// any order; and scores that differ from the partitions' learning apart.
func TestMixDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeM5(t, dir, 40, 110, 0, 1)
	m := readM5(t, dir)
	mix := pipeline.MixConfig{Every: 3}
	first := backtestMix(t, m, 8, mix)
	if first.Mixing.Rounds == 0 || first.Mixing.Published == 0 || first.Mixing.Received == 0 {
		t.Fatalf("mixing stats %+v, want rounds and bytes", first.Mixing)
	}
	for range 2 {
		again := backtestMix(t, m, 8, mix)
		if !reflect.DeepEqual(again.Fixed, first.Fixed) || !reflect.DeepEqual(again.Rolling, first.Rolling) {
			t.Fatalf("a second run scored the LSTM %v (rolling WRMSSE), the first %v", again.Rolling[model.NameLSTM].WRMSSE, first.Rolling[model.NameLSTM].WRMSSE)
		}
		if again.Mixing.Rounds != first.Mixing.Rounds || again.Mixing.Published != first.Mixing.Published || again.Mixing.Received != first.Mixing.Received {
			t.Fatalf("a second run mixed %+v, the first %+v", again.Mixing, first.Mixing)
		}
	}
	apart := backtestMix(t, m, 8, pipeline.MixConfig{})
	if apart.Mixing.Rounds != 0 {
		t.Errorf("mixing off, but %d rounds", apart.Mixing.Rounds)
	}
	if reflect.DeepEqual(apart.Rolling[model.NameLSTM], first.Rolling[model.NameLSTM]) {
		t.Error("the learners scored the same mixing and apart")
	}
	// Baselines do not mix.
	if !reflect.DeepEqual(apart.Rolling[model.NameTSB], first.Rolling[model.NameTSB]) {
		t.Error("mixing changed the TSB scores")
	}
	// One partition has no peers: mixing changes nothing.
	if one, oneOff := backtestMix(t, m, 1, mix), backtestMix(t, m, 1, pipeline.MixConfig{}); !reflect.DeepEqual(one.Rolling, oneOff.Rolling) || one.Mixing.Rounds != 0 {
		t.Errorf("one partition: mixing changed the scores or counted %d rounds", one.Mixing.Rounds)
	}
}
