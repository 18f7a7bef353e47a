package decision_test

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
)

// replaySink hands an engine's closes to a callback, with forecasts when
// the bucket's were wanted.
type replaySink struct {
	wants  func(bucket int64) bool
	closed func(c *pipeline.Close)
}

var _ pipeline.Sink = (*replaySink)(nil)

func (s *replaySink) DeadLetter(*pipeline.Record, pipeline.Reason, string) error { return nil }
func (s *replaySink) Wants(bucket int64) bool                                    { return s.wants(bucket) }
func (s *replaySink) Closed(c *pipeline.Close) error {
	s.closed(c)
	return nil
}

// replayConfig is the configuration of an engine that publishes the
// classical forecaster published and also runs the others in also, as a
// backtest's does.
func replayConfig(published string, also ...string) pipeline.Config {
	cfg := backtest.DefaultConfig().Config
	cfg.Published, cfg.Candidates, cfg.Also = published, nil, also
	return cfg
}

// rows returns the index in Close.Forecasts of each forecaster named.
func rows(cfg pipeline.Config, names ...string) []int {
	all := cfg.Names()
	out := make([]int, len(names))
	for i, n := range names {
		out[i] = slices.Index(all, n)
	}
	return out
}

// replay feeds src through one pipeline engine configured by cfg and
// calls closed for every series at every close; Close.Forecasts is nil
// unless wants says the bucket's are wanted.
func replay(t testing.TB, src source.Source, cfg pipeline.Config, wants func(bucket int64) bool, closed func(c *pipeline.Close)) {
	t.Helper()
	eng, err := pipeline.NewEngine(cfg, &replaySink{wants: wants, closed: closed})
	if err != nil {
		t.Fatal(err)
	}
	eng.BeginBatch()
	var last time.Time
	for off := int64(0); ; off++ {
		r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Process(&pipeline.Record{Offset: off, Key: r.Key, Value: r.Value}); err != nil {
			t.Fatal(err)
		}
		if r.Time.After(last) {
			last = r.Time
		}
		if off%8192 == 0 {
			eng.Release()
		}
	}
	if err := eng.Flush(last.Add(eng.Lateness())); err != nil {
		t.Fatal(err)
	}
}
