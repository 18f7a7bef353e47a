package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/trendstream/trendstream/state"
)

// TestScanSeries lists the global index by prefix and stops when asked.
func TestScanSeries(t *testing.T) {
	db, err := state.Open(state.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b state.Batch
	for i, id := range []string{"S1/A", "S1/AB", "S1/B", "S10/A", "S2/A"} {
		b.Set(indexKey(nil, []byte(id)), appendPartition(nil, int32(i)))
	}
	// A series key of the same name is not in the index.
	b.Set(key(nil, 0, kindSeries, []byte("S1/C")), []byte("x"))
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"S1/", 0, []string{"S1/A@0", "S1/AB@1", "S1/B@2"}},
		{"S1/A", 0, []string{"S1/A@0", "S1/AB@1"}},
		{"", 0, []string{"S1/A@0", "S1/AB@1", "S1/B@2", "S10/A@3", "S2/A@4"}},
		{"", 2, []string{"S1/A@0", "S1/AB@1"}},
		{"S3/", 0, nil},
	} {
		var got []string
		stop := errors.New("stop")
		err := ScanSeries(db, []byte(tc.prefix), func(id []byte, p int32) error {
			got = append(got, fmt.Sprintf("%s@%d", id, p))
			if len(got) == tc.limit {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("prefix %q: %v, want %v", tc.prefix, got, tc.want)
		}
	}
}
