package source

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"
)

func TestItemTruthLevel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		truth ItemTruth
		day   int
		want  float64
	}{
		{"before launch", ItemTruth{Rate: 4, Launch: 10, Stop: -1}, 9, 0},
		{"launch day without ramp", ItemTruth{Rate: 4, Launch: 10, Stop: -1}, 10, 4},
		{"trend", ItemTruth{Rate: 4, Trend: 0.01, Launch: 10, Stop: -1}, 30, 4 * math.Exp(0.2)},
		{"ramp first day", ItemTruth{Rate: 4, Launch: 10, Ramp: 3, Stop: -1}, 10, 1},
		{"ramp last day", ItemTruth{Rate: 4, Launch: 10, Ramp: 3, Stop: -1}, 12, 3},
		{"ramp done", ItemTruth{Rate: 4, Launch: 10, Ramp: 3, Stop: -1}, 13, 4},
		{"before run-down", ItemTruth{Rate: 4, Stop: 20, Fade: 3}, 17, 4},
		{"run-down", ItemTruth{Rate: 4, Stop: 20, Fade: 3}, 19, 2},
		{"stop day", ItemTruth{Rate: 4, Stop: 20, Fade: 3}, 20, 1},
		{"after stop", ItemTruth{Rate: 4, Stop: 20, Fade: 3}, 21, 0},
		{"shift start", ItemTruth{Rate: 4, Stop: -1, Shift: 0.1, ShiftStart: 5, ShiftEnd: 9}, 5, 4},
		{"inside shift", ItemTruth{Rate: 4, Stop: -1, Shift: 0.1, ShiftStart: 5, ShiftEnd: 9}, 7, 4 * math.Exp(0.2)},
		{"after shift", ItemTruth{Rate: 4, Stop: -1, Shift: -0.1, ShiftStart: 5, ShiftEnd: 9}, 30, 4 * math.Exp(-0.4)},
		{"shift before launch counts from it", ItemTruth{Rate: 4, Launch: 7, Stop: -1, Shift: 0.1, ShiftStart: 5, ShiftEnd: 9}, 12, 4 * math.Exp(0.2)},
		{"shift over before launch", ItemTruth{Rate: 4, Launch: 12, Stop: -1, Shift: 0.1, ShiftStart: 5, ShiftEnd: 9}, 15, 4},
	} {
		if got := tc.truth.Level(tc.day); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: Level(%d) = %v, want %v", tc.name, tc.day, got, tc.want)
		}
	}
}

// TestSyntheticFollowsTruth generates a catalogue and checks that its
// sales follow each item's Level: none outside launch to stop, and weekly
// totals around the expected ones, promotions and price changes apart.
func TestSyntheticFollowsTruth(t *testing.T) {
	const days = 200
	cfg := SynthConfig{Stores: 6, SKUs: 50, Seed: 7, Days: days}
	g, err := NewSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	truth := g.Truth()
	g2, _ := NewSynthetic(cfg)
	if !slices.Equal(truth, g2.Truth()) {
		t.Fatal("two generators with one seed differ in truth")
	}
	other, _ := NewSynthetic(SynthConfig{Stores: 6, SKUs: 50, Seed: 8})
	if slices.Equal(truth, other.Truth()) {
		t.Fatal("seeds 7 and 8 gave the same truth")
	}
	index := map[string]int{}
	var shifted, launched, stopped int
	for i, it := range truth {
		index[it.Store+"/"+it.SKU] = i
		if it.Shift != 0 {
			shifted++
		}
		if it.Launch > 0 {
			launched++
		}
		if it.Stop >= 0 {
			stopped++
		}
	}
	if shifted < 40 || launched < 25 || stopped < 12 {
		t.Fatalf("%d shifted, %d launched, %d stopped items of 300", shifted, launched, stopped)
	}
	sales := make([][]float64, len(truth))
	for i := range sales {
		sales[i] = make([]float64, days)
	}
	start := cfg.Start
	if start.IsZero() {
		start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	for {
		r, err := g.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev := g.ev
		sales[index[string(r.Key)]][int(ev.Time.Sub(start)/(24*time.Hour))] += ev.Qty
	}
	// Sales against the truth by what shapes the day: ramps, run-downs
	// and changes of trend must show as plain days do. Promotions and
	// price changes lift every phase alike (by about 12%).
	got, want := map[string]float64{}, map[string]float64{}
	for i := range truth {
		it := &g.items[i]
		for d := range days {
			level := it.Level(d)
			if level == 0 && sales[i][d] > 0 {
				t.Fatalf("%s/%s sold %v on day %d, outside its launch %d to stop %d", it.Store, it.SKU, sales[i][d], d, it.Launch, it.Stop)
			}
			phase := "plain"
			switch {
			case d-it.Launch < it.Ramp:
				phase = "ramp"
			case it.Stop >= 0 && it.Stop-d < it.Fade:
				phase = "run-down"
			case it.Shift > 0 && d > it.ShiftStart:
				phase = "after a rise"
			case it.Shift < 0 && d > it.ShiftStart:
				phase = "after a fall"
			}
			got[phase] += sales[i][d]
			want[phase] += level * it.weekly[start.AddDate(0, 0, d).Weekday()]
		}
	}
	plain := got["plain"] / want["plain"]
	for _, phase := range []string{"ramp", "run-down", "after a rise", "after a fall"} {
		r := got[phase] / want[phase] / plain
		t.Logf("%s: %.0f units sold, %.3f times the truth's relative to plain days", phase, got[phase], r)
		if want[phase] < 2000 || r < 0.85 || r > 1.15 {
			t.Errorf("%s: %.0f units sold, %.3f times the truth's relative to plain days, want about 1 on at least 2000", phase, got[phase], r)
		}
	}
}
