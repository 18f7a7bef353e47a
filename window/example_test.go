package window_test

import (
	"fmt"
	"math"
	"time"

	"github.com/trendstream/trendstream/window"
)

func ExamplePartition() {
	p, err := window.NewPartition(window.Config{Width: window.Day, Lateness: time.Hour})
	if err != nil {
		panic(err)
	}
	at := func(d, h, m int) time.Time { return time.Date(2024, 5, d, h, m, 0, 0, time.UTC) }
	sales := []struct {
		t   time.Time
		qty float64
	}{
		{at(1, 9, 0), 2},
		{at(1, 18, 0), 1},
		{at(2, 0, 30), 1}, // the watermark moves to May 1 23:30
		{at(1, 23, 0), 5}, // out of order, but May 1 is still open
		{at(2, 1, 10), 1}, // the watermark passes midnight: May 1 closes
		{at(1, 22, 0), 4}, // too late
		{at(4, 12, 0), 3}, // May 2 and May 3 close
	}
	closed := func(idx int64, series []*window.Series) error {
		for _, s := range series {
			b, _ := s.Last()
			fmt.Printf("%s closed %s: %v\n", s.ID(), p.Spec().Start(idx).Format("Jan 2"), b.Qty)
		}
		return nil
	}
	for _, s := range sales {
		_, err := p.Add([]byte("TX_3/FOODS_3_090"), &window.Sale{Time: s.t, Qty: s.qty, Price: math.NaN()})
		if err != nil {
			fmt.Println("rejected:", err)
		}
		p.Advance(closed)
	}
	// Output:
	// TX_3/FOODS_3_090 closed May 1: 8
	// rejected: window: event behind watermark
	// TX_3/FOODS_3_090 closed May 2: 2
	// TX_3/FOODS_3_090 closed May 3: 0
}
