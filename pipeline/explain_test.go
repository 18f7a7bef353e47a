package pipeline

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
)

// explainEngine returns an engine publishing model name with a small
// learner, fed 80 days of feedDays' four series.
func explainEngine(t *testing.T, name string) *Engine {
	t.Helper()
	cfg := testConfig()
	cfg.Published = name
	cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 21
	cfg.LearnerMinSteps = 10
	e, err := NewEngine(cfg, &countingSink{want: true})
	if err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedDays(t, e, 0, 80)
	return e
}

// checkpointBytes returns the checkpoints of e's learners.
func checkpointBytes(t *testing.T, e *Engine) []byte {
	t.Helper()
	var b []byte
	for _, l := range e.roster.learners {
		cp, err := l.(model.Checkpointer).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, cp...)
	}
	return b
}

// TestEngineExplain checks the explanations of published forecasts: a
// learner's attribution is complete and explains its own forecast, auto
// lists its candidates with the weights and errors of the series' mix and
// explains its heaviest learner, a baseline has none, unknown series and
// bad settings are errors, and explaining changes nothing.
func TestEngineExplain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		model   string
		id      string
		steps   int
		err     error
		learner string
		mix     bool
	}{
		{"lstm", model.NameLSTM, "A/up", 0, nil, model.NameLSTM, false},
		{"gru", model.NameGRU, "B/flat", 64, nil, model.NameGRU, false},
		{"auto", NameAuto, "A/flat", 0, nil, model.NameLSTM, true},
		{"tsb", "tsb", "A/flat", 0, ErrNoLearner, "", false},
		{"unknown series", model.NameLSTM, "C/none", 0, ErrUnknownSeries, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := explainEngine(t, tc.model)
			before, dirty := checkpointBytes(t, e), len(e.dirty)
			x, err := e.PrepareExplanation(tc.id)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			exp, err := x.Explain(model.ExplainConfig{Steps: tc.steps})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x.Explain(model.ExplainConfig{Steps: -1}); err == nil {
				t.Error("no error for -1 steps")
			}
			if exp.Series != tc.id || exp.Model != tc.model || exp.Learner != tc.learner {
				t.Errorf("series %q model %q learner %q, want %q, %q and %q", exp.Series, exp.Model, exp.Learner, tc.id, tc.model, tc.learner)
			}
			if s := e.part.Series(tc.id); exp.Origin != s.Closed() {
				t.Errorf("origin %d, want the last closed bucket %d", exp.Origin, s.Closed())
			}
			a := exp.Attribution
			var sum float64
			for _, v := range a.Groups {
				sum += v
			}
			if d := a.Forecast - a.Baseline - sum - a.Residual; math.Abs(d) > 1e-9 {
				t.Errorf("groups %v and residual %g do not add up to the change %g", a.Groups, a.Residual, a.Forecast-a.Baseline)
			}
			if math.Abs(a.Residual) > 0.01*math.Abs(a.Forecast-a.Baseline)+1e-6 {
				t.Errorf("residual %g of a change %g", a.Residual, a.Forecast-a.Baseline)
			}
			if a.Forecast <= 0 || a.Buckets != 7 {
				t.Errorf("forecast %g over %d buckets", a.Forecast, a.Buckets)
			}
			if tc.mix {
				var wsum float64
				for _, c := range exp.Mix {
					wsum += c.Weight
					if c.Scores >= exp.MinScores && math.IsNaN(c.Error) {
						t.Errorf("candidate %s scored %d times has no error", c.Model, c.Scores)
					}
				}
				if len(exp.Mix) != 4 || math.Abs(wsum-1) > 1e-9 {
					t.Errorf("mix %+v, want the 4 default candidates with weights summing to 1", exp.Mix)
				}
			} else if exp.Mix != nil || exp.Weight != 1 {
				t.Errorf("mix %+v and weight %g for a single model", exp.Mix, exp.Weight)
			}
			if !bytes.Equal(before, checkpointBytes(t, e)) {
				t.Error("explaining changed the learner")
			}
			if len(e.dirty) != dirty {
				t.Errorf("%d series dirty after explaining, %d before", len(e.dirty), dirty)
			}
		})
	}
}

// TestEngineExplainEvicted explains series evicted from memory: read from
// the store with their ensemble state, they get the explanation they got
// in memory, and stay evicted.
func TestEngineExplainEvicted(t *testing.T) {
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := testConfig()
	cfg.Published = NameAuto
	cfg.Learner.Layers, cfg.Learner.Hidden, cfg.Learner.Window = 1, 8, 21
	cfg.LearnerMinSteps = 10
	e, err := NewEngine(cfg, &countingSink{want: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(db, 0); err != nil {
		t.Fatal(err)
	}
	e.BeginBatch()
	feedDays(t, e, 0, 80)
	var b state.Batch
	if err := e.AppendState(&b, 0, 0, 320, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	const id = "A/up"
	explain := func() *Explanation {
		t.Helper()
		x, err := e.PrepareExplanation(id)
		if err != nil {
			t.Fatal(err)
		}
		exp, err := x.Explain(model.ExplainConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}
	inMemory := explain()
	s := e.part.Series(id)
	e.part.Evict(s)
	e.forget(s)
	e.spilled = true
	evicted := explain()
	if e.part.Series(id) != nil || e.roster.states[s] != nil {
		t.Error("explaining took the evicted series back into memory")
	}
	if *evicted.Attribution != *inMemory.Attribution {
		t.Errorf("evicted series explained as %+v, in memory as %+v", *evicted.Attribution, *inMemory.Attribution)
	}
	for c, m := range inMemory.Mix {
		if ev := evicted.Mix[c]; ev.Weight != m.Weight || ev.Scores != m.Scores || ev.Error != m.Error {
			t.Errorf("candidate %s: evicted %+v, in memory %+v", m.Model, ev, m)
		}
	}
	if inMemory.Mix[0].Scores == 0 {
		t.Error("no scores: the test does not exercise the ensemble state")
	}
}
