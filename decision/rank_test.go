package decision_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trendstream/trendstream/decision"
)

// randomRanked draws n ranked series over stores S0..S2 and all classes,
// with scores rounded so that ties occur.
func randomRanked(r *rand.Rand, n int) []decision.Ranked {
	out := make([]decision.Ranked, n)
	for i := range out {
		out[i] = decision.Ranked{
			Series: fmt.Sprintf("S%d/K%03d", r.IntN(3), i),
			Trend:  decision.Trend{Class: decision.Class(r.IntN(5)), Score: float64(r.IntN(20)) / 4},
		}
	}
	return out
}

// bruteTop returns the best n entries of store and class by sorting all.
func bruteTop(all []decision.Ranked, store string, c decision.Class, n int) []decision.Ranked {
	var out []decision.Ranked
	for _, e := range all {
		if e.Trend.Class == c && e.Series[:len(store)+1] == store+"/" {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b decision.Ranked) int {
		switch {
		case a.Trend.Score > b.Trend.Score:
			return -1
		case a.Trend.Score < b.Trend.Score:
			return 1
		}
		return cmpString(a.Series, b.Series)
	})
	return out[:min(n, len(out))]
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRankingTop(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rk := decision.NewRanking(5)
	for round := range 3 {
		rk.Reset()
		all := randomRanked(r, 300)
		for _, e := range all {
			rk.Add(e.Series, e.Trend)
		}
		if got := rk.Stores(nil); !slices.Equal(got, []string{"S0", "S1", "S2"}) {
			t.Fatalf("round %d: stores %v", round, got)
		}
		for _, store := range []string{"S0", "S1", "S2"} {
			for _, c := range decision.Classes {
				got, want := rk.Top(nil, store, c), bruteTop(all, store, c, 5)
				if !slices.Equal(got, want) {
					t.Errorf("round %d, %s %v: top %v, want %v", round, store, c, got, want)
				}
			}
			if got := rk.Top(nil, store, decision.None); len(got) != 0 {
				t.Errorf("class none ranked: %v", got)
			}
		}
	}
	rk.Reset()
	if got := rk.Stores(nil); len(got) != 0 {
		t.Errorf("stores after Reset: %v", got)
	}
}

// TestMerge checks that merging the partitions' top lists gives the top
// of all their series, each series once.
func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	all := randomRanked(r, 400)
	parts := make([]*decision.Ranking, 4)
	for i := range parts {
		parts[i] = decision.NewRanking(10)
	}
	for i, e := range all {
		parts[i%len(parts)].Add(e.Series, e.Trend)
	}
	// A partition that moved keeps a stale copy of one series elsewhere,
	// with a lower score.
	moved := bruteTop(all, "S1", decision.Rising, 1)[0]
	stale := moved.Trend
	stale.Score -= 0.1
	parts[(slices.Index(all, moved)+1)%len(parts)].Add(moved.Series, stale)
	for _, limit := range []int{1, 7, 10} {
		var lists [][]decision.Ranked
		for _, p := range parts {
			lists = append(lists, p.Top(nil, "S1", decision.Rising))
		}
		got, want := decision.Merge(nil, limit, lists...), bruteTop(all, "S1", decision.Rising, limit)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: merged %v, want %v", limit, got, want)
		}
	}
}

func TestRankingAddAllocs(t *testing.T) {
	rk := decision.NewRanking(10)
	all := randomRanked(rand.New(rand.NewPCG(7, 8)), 1000)
	for _, e := range all {
		rk.Add(e.Series, e.Trend)
	}
	allocs := testing.AllocsPerRun(20, func() {
		rk.Reset()
		for _, e := range all {
			rk.Add(e.Series, e.Trend)
		}
	})
	if allocs != 0 {
		t.Errorf("a steady close allocates %v times", allocs)
	}
}
