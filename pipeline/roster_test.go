package pipeline

import (
	"testing"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// forgetSpy is a learner that records the keys it is told to forget.
type forgetSpy struct {
	model.Learner
	forgot []uint64
}

func (f *forgetSpy) Forget(key uint64) { f.forgot = append(f.forgot, key) }

// TestForgetEvictedSeries checks that evicting a series from memory makes
// the learners drop what they keep under its key (the LSTM's carried
// state), since the series comes back with a new serial.
func TestForgetEvictedSeries(t *testing.T) {
	part, err := window.NewPartition(window.Config{Width: window.Day})
	if err != nil {
		t.Fatal(err)
	}
	s, err := part.Add([]byte("S/A"), &window.Sale{Time: time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC), Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	spy := &forgetSpy{}
	m := &roster{states: map[*window.Series]*model.EnsembleState{s: {}}, learners: []model.Learner{spy}}
	m.forget(s)
	if len(m.states) != 0 || len(spy.forgot) != 1 || spy.forgot[0] != s.Serial() {
		t.Errorf("after forget: %d ensemble states, learner forgot %v; want none and [%d]", len(m.states), spy.forgot, s.Serial())
	}
}
