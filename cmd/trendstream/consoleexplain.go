package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/stream"
)

// explainer explains a series' latest forecast: stream.Processor.Explain.
type explainer interface {
	Explain(ctx context.Context, id string, cfg model.ExplainConfig) (*stream.ExplainResponse, error)
}

// explanationCacheSize bounds the explanations a console keeps: more
// than the series pages the console streams at once (console.Config's
// MaxStreams), so that the open pages' explanations stay.
const explanationCacheSize = 1024

// explanations explains series for the console's series pages. An
// explanation costs a tenth of a second or more of CPU, and a series page
// asks for its series again at every live update, so each series'
// explanation is kept until its forecast's origin moves: the learner and
// the window it explains change only when a bucket closes. When full it
// drops one explanation of an older origin (or any) per new one.
type explanations struct {
	x explainer

	mu   sync.Mutex
	kept map[string]keptExplanation // by series id
}

type keptExplanation struct {
	origin time.Time
	exp    *console.Explanation // nil: nothing to explain at that origin
}

func newExplanations(x explainer) *explanations {
	return &explanations{x: x, kept: make(map[string]keptExplanation)}
}

// fill sets s.Explanation for the series id when its published forecast
// has a learner to attribute through and the explanation is of the
// forecast s shows. A series without one (a classical model published,
// no closed bucket yet) has no explanation section; so has one whose
// explanation raced a close, until the next update.
func (e *explanations) fill(ctx context.Context, s *console.Series, id string) error {
	if s.Forecast == nil {
		return nil
	}
	origin := s.Forecast.Origin
	e.mu.Lock()
	k, ok := e.kept[id]
	e.mu.Unlock()
	if ok && k.origin.Equal(origin) {
		s.Explanation = k.exp
		return nil
	}
	resp, err := e.x.Explain(ctx, id, model.ExplainConfig{})
	switch {
	case errors.Is(err, stream.ErrNoLearner):
		resp = nil // kept: nothing to explain at this origin
	case errors.Is(err, stream.ErrNotFound):
		return nil // a rebalance is moving the partition: not kept
	case err != nil:
		return fmt.Errorf("explaining %q: %w", id, err)
	case !resp.Origin.Equal(origin):
		return nil // a bucket closed between the two reads
	}
	exp := consoleExplanation(resp)
	e.mu.Lock()
	if _, ok := e.kept[id]; !ok && len(e.kept) >= explanationCacheSize {
		// Drop the explanations of another origin first, then any one.
		for k, v := range e.kept {
			if !v.origin.Equal(origin) {
				delete(e.kept, k)
				break
			}
		}
		for k := range e.kept {
			if len(e.kept) < explanationCacheSize {
				break
			}
			delete(e.kept, k)
		}
	}
	e.kept[id] = keptExplanation{origin: origin, exp: exp}
	e.mu.Unlock()
	s.Explanation = exp
	return nil
}

// groupNames are the input groups as a planner reads them.
var groupNames = map[string]string{
	model.GroupLevel.String():         "Recent level",
	model.GroupWeekly.String():        "Weekly pattern",
	model.GroupTrend.String():         "Trend",
	model.GroupPrice.String():         "Price",
	model.GroupPromotion.String():     "Promotion",
	model.GroupCalendar.String():      "Calendar events",
	model.GroupIntermittency.String(): "Intermittency",
}

// consoleExplanation turns an explanation into the console's words: a
// summary of what the learner forecasts against a steady series of the
// same volume, and each input group's part of the difference, largest
// first. Nil when there is no learner's attribution.
func consoleExplanation(r *stream.ExplainResponse) *console.Explanation {
	if r == nil || r.Attribution == nil {
		return nil
	}
	a := r.Attribution
	var b strings.Builder
	fmt.Fprintf(&b, "The %s model forecasts %s a bucket over the next %d buckets, against %s for a steady series of the same volume",
		r.Learner, quantity(a.Forecast), a.Buckets, quantity(a.Baseline))
	if r.Model == pipeline.NameAuto {
		fmt.Fprintf(&b, "; it has %.0f%% of the weight in the published forecast", 100*r.LearnerWeight)
	}
	b.WriteString(". Each input's part of the difference:")
	exp := &console.Explanation{Summary: b.String()}
	for g, v := range a.Groups {
		if v == 0 || math.IsNaN(v) {
			continue
		}
		name := groupNames[g]
		if name == "" {
			name = g
		}
		exp.Factors = append(exp.Factors, console.Factor{Name: name, Effect: v})
	}
	slices.SortFunc(exp.Factors, func(x, y console.Factor) int {
		return cmp.Or(cmp.Compare(math.Abs(y.Effect), math.Abs(x.Effect)), strings.Compare(x.Name, y.Name))
	})
	return exp
}

// quantity formats units for a sentence: two decimals below 10, one
// below 100, none above.
func quantity(v float64) string {
	switch a := math.Abs(v); {
	case a < 10:
		return fmt.Sprintf("%.2f", v)
	case a < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
