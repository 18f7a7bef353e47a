package decision_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/model"
)

// encodable is a state that encodes to versioned bytes.
type encodable interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

// busyStates returns states that have seen a simulated partition's 80
// closes: a series' trend and replenishment states and the partition's
// calibration.
func busyStates(t testing.TB) (*decision.TrendState, *decision.ReplenishState, *decision.Replenisher) {
	t.Helper()
	tr, err := decision.NewTrends(decision.TrendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rep := newReplenisher(t, decision.ReplenishConfig{MinWeight: 10})
	sim := newSimulation(3, 50)
	f := flatForecast(4, 1, 4, 7)
	trends := make([]decision.TrendState, 50)
	states := make([]decision.ReplenishState, 50)
	var p decision.Plan
	for d := range 80 {
		sim.day()
		for i := range states {
			tr.Classify(&trends[i], &model.Input{Y: sim.y[i]}, int64(d), f)
			if err := rep.Update(&states[i], int64(d), sim.y[i], f, decision.Policy{}, nil, &p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !p.Calibrated {
		t.Fatal("the calibration never filled")
	}
	return &trends[0], &states[0], rep
}

func TestStateRoundTrip(t *testing.T) {
	ts, rs, rep := busyStates(t)
	fresh, _ := decision.NewReplenisher(decision.ReplenishConfig{})
	for _, tc := range []struct {
		name     string
		from, to encodable
	}{
		{"trend", ts, new(decision.TrendState)},
		{"replenishment", rs, new(decision.ReplenishState)},
		{"empty replenishment", new(decision.ReplenishState), new(decision.ReplenishState)},
		{"calibration", rep, fresh},
	} {
		b, _ := tc.from.AppendBinary([]byte("prefix"))
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%s: AppendBinary did not append", tc.name)
		}
		b = b[len("prefix"):]
		if err := tc.to.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		again, _ := tc.to.AppendBinary(nil)
		if !bytes.Equal(again, b) {
			t.Errorf("%s: decoded state encodes differently", tc.name)
		}
		// Every truncation and a trailing byte fail with ErrState.
		for n := 0; n < len(b); n += 1 + n/64 {
			if err := tc.to.UnmarshalBinary(b[:n]); !errors.Is(err, decision.ErrState) {
				t.Fatalf("%s truncated to %d of %d bytes: %v", tc.name, n, len(b), err)
			}
		}
		if err := tc.to.UnmarshalBinary(append(b, 0)); !errors.Is(err, decision.ErrState) {
			t.Errorf("%s with a trailing byte: %v", tc.name, err)
		}
		bad := append([]byte{b[0] + 1}, b[1:]...)
		if err := tc.to.UnmarshalBinary(bad); !errors.Is(err, decision.ErrState) {
			t.Errorf("%s of another version: %v", tc.name, err)
		}
	}
}

// TestRestoredCalibration checks that a calibration decoded into another
// Replenisher plans as the original does.
func TestRestoredCalibration(t *testing.T) {
	_, rs, rep := busyStates(t)
	b, _ := rep.AppendBinary(nil)
	other := newReplenisher(t, decision.ReplenishConfig{MinWeight: 10})
	if err := other.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	sb, _ := rs.AppendBinary(nil)
	var rs2 decision.ReplenishState
	if err := rs2.UnmarshalBinary(sb); err != nil {
		t.Fatal(err)
	}
	y := make([]float64, 30)
	for i := range y {
		y[i] = float64(rand.N(8))
	}
	f := flatForecast(4, 1, 4, 7)
	var p1, p2 decision.Plan
	for bucket := int64(80); bucket < 83; bucket++ {
		if err := rep.Update(rs, bucket, y, f, decision.Policy{}, nil, &p1); err != nil {
			t.Fatal(err)
		}
		if err := other.Update(&rs2, bucket, y, f, decision.Policy{}, nil, &p2); err != nil {
			t.Fatal(err)
		}
		if p1.OrderUpTo != p2.OrderUpTo || p1.ReorderPoint != p2.ReorderPoint || !p1.Calibrated {
			t.Fatalf("close %d: restored plans %+v, original %+v", bucket, p2, p1)
		}
	}
}

func FuzzDecodeStates(f *testing.F) {
	ts, rs, rep := busyStates(f)
	for _, s := range []encodable{ts, rs, rep} {
		b, _ := s.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fresh, _ := decision.NewReplenisher(decision.ReplenishConfig{})
		for _, s := range []encodable{new(decision.TrendState), new(decision.ReplenishState), fresh} {
			if err := s.UnmarshalBinary(b); err != nil {
				if !errors.Is(err, decision.ErrState) {
					t.Fatalf("%T: error %v does not wrap ErrState", s, err)
				}
				continue
			}
			again, _ := s.AppendBinary(nil)
			if err := s.UnmarshalBinary(again); err != nil {
				t.Fatalf("%T: re-encoded state does not decode: %v", s, err)
			}
		}
	})
}
