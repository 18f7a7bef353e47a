package window

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

var day0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // a Monday

func at(days, hours float64) time.Time {
	return day0.Add(time.Duration((days*24 + hours) * float64(time.Hour)))
}

func sale(t time.Time, qty float64) *Sale {
	return &Sale{Time: t, Qty: qty, Price: math.NaN()}
}

func newTestPartition(t testing.TB, cfg Config) *Partition {
	t.Helper()
	p, err := NewPartition(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// closeLog records the closes Advance reports as "bucket:id=qty,..." lines.
type closeLog []string

func (l *closeLog) fn(p *Partition) func(int64, []*Series) error {
	return func(idx int64, closed []*Series) error {
		parts := make([]string, len(closed))
		for i, s := range closed {
			b, _ := s.Last()
			parts[i] = fmt.Sprintf("%s=%g", s.ID(), b.Qty)
		}
		*l = append(*l, fmt.Sprintf("%d:%s", idx-p.spec.Index(day0), strings.Join(parts, ",")))
		return nil
	}
}

func TestPartitionScenarios(t *testing.T) {
	type ev struct {
		id   string
		t    time.Time
		qty  float64
		late bool
	}
	for _, tc := range []struct {
		name     string
		lateness time.Duration
		events   []ev
		closes   []string
		open     map[string][]float64 // series -> open bucket quantities
	}{
		{
			name:     "buckets close when the watermark passes their end",
			lateness: time.Hour,
			events: []ev{
				{id: "s/a", t: at(0, 10), qty: 2},
				{id: "s/a", t: at(0, 20), qty: 3},
				{id: "s/a", t: at(1, 0.5), qty: 1}, // watermark 23:30 on day 0: nothing closes
				{id: "s/a", t: at(1, 1), qty: 4},   // watermark reaches day 1 00:00: day 0 closes
			},
			closes: []string{"0:s/a=5"},
			open:   map[string][]float64{"s/a": {5}},
		},
		{
			name:     "out of order within lateness counts in its bucket",
			lateness: 2 * time.Hour,
			events: []ev{
				{id: "s/a", t: at(1, 1), qty: 1},
				{id: "s/a", t: at(0, 23.5), qty: 7}, // behind the watermark but its bucket is open
				{id: "s/a", t: at(1, 3), qty: 1},
			},
			closes: []string{"0:s/a=7"},
			open:   map[string][]float64{"s/a": {2}},
		},
		{
			name:     "late events are rejected and change nothing",
			lateness: time.Hour,
			events: []ev{
				{id: "s/a", t: at(0, 12), qty: 1},
				{id: "s/a", t: at(2, 2), qty: 1},
				{id: "s/a", t: at(0, 23), qty: 5, late: true},
				{id: "s/b", t: at(1, 23), qty: 5, late: true}, // a new series with a late first event is not created
			},
			closes: []string{"0:s/a=1", "1:s/a=0"},
			open:   map[string][]float64{"s/a": {1}},
		},
		{
			name:     "missing buckets are zeros and series start at their first event",
			lateness: 0,
			events: []ev{
				{id: "s/a", t: at(0, 1), qty: 3},
				{id: "s/b", t: at(2, 5), qty: 1},
				{id: "s/a", t: at(4, 0), qty: 2},
			},
			closes: []string{"0:s/a=3", "1:s/a=0", "2:s/a=0,s/b=1", "3:s/a=0,s/b=0"},
			open:   map[string][]float64{"s/a": {2}, "s/b": nil},
		},
		{
			name:     "a first event earlier than the partition's first moves the series start",
			lateness: 36 * time.Hour,
			events: []ev{
				{id: "s/a", t: at(2, 0), qty: 1},
				{id: "s/a", t: at(1, 0), qty: 2},
				{id: "s/a", t: at(4, 0), qty: 1},
			},
			closes: []string{"1:s/a=2"},
			open:   map[string][]float64{"s/a": {1, 0, 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPartition(t, Config{Width: Day, Lateness: tc.lateness})
			var log closeLog
			for i, e := range tc.events {
				_, err := p.Add([]byte(e.id), sale(e.t, e.qty))
				if e.late != errors.Is(err, ErrLate) || (!e.late && err != nil) {
					t.Fatalf("event %d: Add error %v, want late=%v", i, err, e.late)
				}
				if err := p.Advance(log.fn(p)); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(log, tc.closes) {
				t.Errorf("closes:\n got %q\nwant %q", log, tc.closes)
			}
			if p.Len() != len(tc.open) {
				t.Errorf("%d series, want %d", p.Len(), len(tc.open))
			}
			for id, want := range tc.open {
				s := p.Series(id)
				if s == nil {
					t.Fatalf("series %s missing", id)
				}
				var got []float64
				if len(s.open) > 0 {
					first := s.open[0].idx
					for _, o := range s.Open(nil) {
						for int64(len(got)) < o.Index-first {
							got = append(got, 0)
						}
						got = append(got, o.Qty)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s open buckets %v, want %v", id, got, want)
				}
			}
		})
	}
}

func TestPartitionLateMatchesAdd(t *testing.T) {
	p := newTestPartition(t, Config{Width: Hour, Lateness: 30 * time.Minute})
	if p.Late(at(0, 0)) {
		t.Fatal("empty partition reports late")
	}
	if _, err := p.Add([]byte("s/a"), sale(at(0, 5), 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t    time.Time
		late bool
	}{
		{at(0, 3.99), true},
		{at(0, 4), false}, // the 04:00 bucket ends at 05:00, after the 04:30 watermark
		{at(0, 4.6), false},
	} {
		if got := p.Late(tc.t); got != tc.late {
			t.Errorf("Late(%v) = %v, want %v", tc.t, got, tc.late)
		}
	}
	wm, ok := p.Watermark()
	if !ok || !wm.Equal(at(0, 4.5)) {
		t.Errorf("Watermark = %v, %v; want %v", wm, ok, at(0, 4.5))
	}
}

func TestPartitionAdvanceStopsOnError(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day})
	p.Add([]byte("s/a"), sale(at(0, 1), 1))
	p.Add([]byte("s/a"), sale(at(3, 1), 1))
	boom := errors.New("boom")
	calls := 0
	err := p.Advance(func(int64, []*Series) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("Advance = %v after %d calls, want boom after 1", err, calls)
	}
	if err := p.Advance(func(int64, []*Series) error { calls++; return nil }); err != nil || calls != 3 {
		t.Fatalf("resumed Advance = %v after %d calls, want 3", err, calls)
	}
}

func TestFeatures(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day, Alpha: 0.5, Beta: 0.5, Gamma: 0.5})
	// Days 0..8 (Monday..Tuesday of the next week) with these totals.
	qty := []float64{4, 0, 2, 0, 0, 6, 1, 8, 0}
	for d, q := range qty {
		s := &Sale{Time: at(float64(d), 12), Qty: q, Price: 2 + float64(d), Promo: d == 7}
		if q == 0 {
			continue
		}
		if _, err := p.Add([]byte("s/a"), s); err != nil {
			t.Fatal(err)
		}
	}
	p.Add([]byte("s/b"), sale(at(9, 12), 1)) // closes day 8
	if err := p.Advance(func(int64, []*Series) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s := p.Series("s/a")
	f := s.Features()

	// Holt with alpha = beta = 0.5 from level 4, trend 0.
	level, trend := qty[0], 0.0
	for _, y := range qty[1:] {
		prev := level
		level = 0.5*y + 0.5*(level+trend)
		trend = 0.5*(level-prev) + 0.5*trend
	}
	// Seasonal EWMA: Monday saw 4 then 8, Tuesday 0 then 0, others once.
	season := []float64{0.5*8 + 0.5*4, 0, 2, 0, 0, 6, 1}
	var mean float64
	for _, v := range season {
		mean += v / 7
	}
	want := Features{
		Buckets:    9,
		MA7:        (2 + 0 + 0 + 6 + 1 + 8 + 0) / 7.0,
		MA28:       21 / 9.0,
		Level:      level,
		Trend:      trend,
		ZeroShare:  4 / 9.0,
		SinceSale:  1,
		LastPrice:  9,
		PromoShare: 1 / 9.0,
	}
	for _, v := range season {
		want.Seasonal = append(want.Seasonal, v/mean)
	}
	const eps = 1e-12
	check := func(name string, got, want float64) {
		if math.Abs(got-want) > eps {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("MA7", f.MA7, want.MA7)
	check("MA28", f.MA28, want.MA28)
	check("Level", f.Level, want.Level)
	check("Trend", f.Trend, want.Trend)
	check("ZeroShare", f.ZeroShare, want.ZeroShare)
	check("LastPrice", f.LastPrice, want.LastPrice)
	check("PromoShare", f.PromoShare, want.PromoShare)
	if f.Buckets != want.Buckets || f.SinceSale != want.SinceSale {
		t.Errorf("Buckets, SinceSale = %d, %d; want %d, %d", f.Buckets, f.SinceSale, want.Buckets, want.SinceSale)
	}
	if len(f.Seasonal) != 7 {
		t.Fatalf("Seasonal = %v", f.Seasonal)
	}
	for i := range want.Seasonal {
		check(fmt.Sprintf("Seasonal[%d]", i), f.Seasonal[i], want.Seasonal[i])
	}
	// Zero days carry the last known price forward.
	if b := s.At(4); b.Price != 4 || b.Qty != 0 {
		t.Errorf("day 4 bucket = %+v, want price 4 carried from day 2", b)
	}
	if b := s.At(7); b.Promo != 1 || b.Price != 9 {
		t.Errorf("day 7 bucket = %+v, want promo 1 price 9", b)
	}
	if got := p.Series("s/b").Features(); got.Seasonal != nil || got.Buckets != 0 {
		t.Errorf("fresh series features = %+v", got)
	}
}

func TestRingKeepsHistory(t *testing.T) {
	p := newTestPartition(t, Config{Width: Hour, History: 30})
	for h := range 100 {
		p.Add([]byte("s/a"), sale(at(0, float64(h)), float64(h)))
		p.Advance(func(int64, []*Series) error { return nil })
	}
	s := p.Series("s/a")
	if s.Len() != 30 {
		t.Fatalf("Len = %d, want 30", s.Len())
	}
	got := s.QtyTo(nil, 100)
	for i, q := range got {
		if q != float64(69+i) {
			t.Fatalf("ring %v, want 69..98", got)
		}
	}
	if last := s.QtyTo(nil, 3); !slices.Equal(last, []float64{96, 97, 98}) {
		t.Errorf("QtyTo(3) = %v", last)
	}
	if s.Closed()-int64(s.Len())+1 != p.spec.Index(at(0, 69)) {
		t.Errorf("index of the oldest held bucket is off")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Width: Day, Lateness: -time.Second},
		{Width: Day, History: 10},
		{Width: Day, Alpha: 1.5},
		{Width: Day, Beta: -1},
		{Width: Day, Gamma: math.NaN()},
	} {
		if _, err := NewPartition(cfg); err == nil {
			t.Errorf("NewPartition(%+v) succeeded", cfg)
		}
	}
}

func BenchmarkPartitionAdd(b *testing.B) {
	for _, w := range []Width{Hour, Day} {
		for _, zone := range []string{"UTC", "America/New_York"} {
			b.Run(fmt.Sprintf("%v/%s", w, zone), func(b *testing.B) {
				p := newTestPartition(b, Config{Width: w, Location: mustLoc(b, zone), Lateness: time.Hour})
				ids := make([][]byte, 1000)
				for i := range ids {
					ids[i] = fmt.Appendf(nil, "store/sku-%04d", i)
				}
				s := Sale{Time: day0, Qty: 1, Price: 2.5}
				fn := func(int64, []*Series) error { return nil }
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					s.Time = day0.Add(time.Duration(i) * 50 * time.Millisecond)
					if _, err := p.Add(ids[i%len(ids)], &s); err != nil {
						b.Fatal(err)
					}
					if p.Ready() {
						p.Advance(fn)
					}
				}
			})
		}
	}
}

func TestAdvanceTo(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day, Lateness: time.Hour})
	var log closeLog
	if err := p.AdvanceTo(at(5, 0), log.fn(p)); err != nil || len(log) != 0 {
		t.Fatalf("AdvanceTo on an empty partition closed %v, %v", log, err)
	}
	p.Add([]byte("s/a"), sale(at(0, 12), 2))
	if err := p.AdvanceTo(at(2, 0), log.fn(p)); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0:s/a=2", "1:s/a=0"}; !slices.Equal(log, want) {
		t.Errorf("closes %v, want %v", log, want)
	}
	wm, _ := p.Watermark()
	if !wm.Equal(at(2, 0)) {
		t.Errorf("watermark %v, want %v", wm, at(2, 0))
	}
	// Moving the watermark back does nothing.
	if err := p.AdvanceTo(at(1, 0), log.fn(p)); err != nil || len(log) != 2 {
		t.Errorf("AdvanceTo backwards: %v, %v", log, err)
	}
	if !p.Late(at(1, 23)) || p.Late(at(2, 0)) {
		t.Error("Late disagrees with the advanced watermark")
	}
}

func TestEvict(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day})
	for _, id := range []string{"s/c", "s/a", "s/d", "s/b"} {
		p.Add([]byte(id), sale(at(0, 10), 1))
	}
	p.Evict(p.Series("s/a"))
	p.Evict(p.Series("s/a")) // gone already: no effect
	if p.Len() != 3 || p.Series("s/a") != nil {
		t.Fatalf("after evicting s/a: %d series", p.Len())
	}
	var ids []string
	p.Each(func(s *Series) bool { ids = append(ids, s.ID()); return true })
	if !slices.Equal(ids, []string{"s/b", "s/c", "s/d"}) {
		t.Errorf("series %v", ids)
	}
	// An evicted series taken back from its stored state catches up with
	// zero buckets at the next close.
	stored, _ := p.Series("s/b").AppendBinary(nil)
	p.Evict(p.Series("s/b"))
	p.Add([]byte("s/c"), sale(at(3, 10), 1))
	p.Advance(func(int64, []*Series) error { return nil })
	s, err := p.DecodeSeries(stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Add([]byte("s/c"), sale(at(4, 10), 1))
	var closed []string
	p.Advance(func(idx int64, ss []*Series) error {
		for _, s := range ss {
			closed = append(closed, s.ID())
		}
		return nil
	})
	if !slices.Equal(closed, []string{"s/b", "s/c", "s/d"}) || !slices.Equal(s.QtyTo(nil, 10), []float64{1, 0, 0, 0}) {
		t.Errorf("closed %v; s/b buckets %v, want [1 0 0 0]", closed, s.QtyTo(nil, 10))
	}
}

// BenchmarkSeriesMemory reports the heap a daily series with a full
// default history takes, the figure behind the series cap's default.
func BenchmarkSeriesMemory(b *testing.B) {
	const n = 10000
	var ms runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		p := newTestPartition(b, Config{Width: Day})
		for d := range 90 {
			for i := range n {
				p.Add(fmt.Appendf(nil, "store-%02d/SKU-%06d", i%10, i), sale(at(float64(d), 12), 1))
			}
			p.Advance(func(int64, []*Series) error { return nil })
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc-before)/n, "B/series")
		runtime.KeepAlive(p)
	}
}

// TestSeriesAheadOfPartition loads a series whose state has closed more
// buckets than its partition, as after a crash that stored the series but
// not the partition's commit point: an event in a bucket the series has
// closed is late even though the partition's watermark would take it, and
// the series' later buckets keep their sales.
func TestSeriesAheadOfPartition(t *testing.T) {
	ahead := newTestPartition(t, Config{Width: Day})
	for d, q := range []float64{1, 2, 3} {
		ahead.Add([]byte("s/a"), sale(at(float64(d), 10), q))
	}
	ahead.Advance(func(int64, []*Series) error { return nil }) // closes days 0 and 1
	src := ahead.Series("s/a")
	state, _ := src.AppendBinary(nil)
	var ring []IndexedBucket
	for i := range src.Len() {
		ring = append(ring, IndexedBucket{Index: src.Closed() - int64(src.Len()) + 1 + int64(i), Bucket: src.At(i)})
	}

	p := newTestPartition(t, Config{Width: Day})
	p.Add([]byte("s/b"), sale(at(0, 12), 1)) // the partition has closed nothing
	s, err := p.DecodeSeries(state, ring)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add([]byte("s/a"), sale(at(1, 15), 5)); !errors.Is(err, ErrLate) {
		t.Fatalf("an event in a bucket the series closed: Add = %v, want ErrLate", err)
	}
	if _, err := p.Add([]byte("s/a"), sale(at(2, 15), 4)); err != nil {
		t.Fatal(err)
	}
	p.Add([]byte("s/b"), sale(at(3, 12), 1))
	if err := p.Advance(func(int64, []*Series) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := s.QtyTo(nil, 10); !slices.Equal(got, []float64{1, 2, 7}) {
		t.Errorf("s/a buckets %v, want [1 2 7]", got)
	}
	if open := s.Open(nil); len(open) != 0 {
		t.Errorf("s/a has buckets stuck open: %+v", open)
	}
}

// TestWatermarkJump moves the watermark by hundreds of thousands of
// buckets at once, from a first event stamped 1970 to one in 2024: only
// the last History buckets are reported closed, the series' counts still
// cover the whole gap, and the bucket changes to store stay within the
// history. A series revived from a state far behind catches up the same
// way. Before, every bucket in the gap was closed and reported in turn.
func TestWatermarkJump(t *testing.T) {
	const history = 28
	p := newTestPartition(t, Config{Width: Hour, History: history})
	epoch := time.Date(1970, 1, 1, 0, 30, 0, 0, time.UTC)
	if _, err := p.Add([]byte("s/old"), sale(epoch, 3)); err != nil {
		t.Fatal(err)
	}
	old := p.Series("s/old")
	stale, _ := old.AppendBinary(nil) // as evicted before the jump, with no closed bucket
	now := time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)
	if _, err := p.Add([]byte("s/new"), sale(now, 1)); err != nil {
		t.Fatal(err)
	}
	reported := 0
	if err := p.Advance(func(int64, []*Series) error { reported++; return nil }); err != nil {
		t.Fatal(err)
	}
	gap := p.spec.Index(now) - p.spec.Index(epoch)
	if reported != history {
		t.Errorf("%d closes reported for a jump of %d buckets, want the last %d", reported, gap, history)
	}
	checkCaughtUp := func(s *Series, closed int64) {
		t.Helper()
		f := s.Features()
		if s.Closed() != closed || f.Buckets != gap || f.SinceSale != gap-1 || f.ZeroShare != float64(gap-1)/float64(gap) {
			t.Errorf("%s: closed %d, features %+v; want closed %d, %d buckets, %d since the sale", s.ID(), s.Closed(), f, closed, gap, gap-1)
		}
		if got := s.QtyTo(nil, history); len(got) != history || slices.Max(got) != 0 {
			t.Errorf("%s: history %v, want %d zeros", s.ID(), got, history)
		}
		var sets, dels int
		s.Changes(func(int64, Bucket) { sets++ }, func(int64) { dels++ })
		if sets != history || dels != 0 {
			t.Errorf("%s: %d buckets to store and %d to delete, want %d and none stored before", s.ID(), sets, dels, history)
		}
	}
	checkCaughtUp(old, p.spec.Index(now)-1)
	if n := p.Skipped(); n != gap-history {
		t.Errorf("Skipped = %d, want %d", n, gap-history)
	}

	// The series comes back from its state before the jump.
	p.Evict(old)
	revived, err := p.DecodeSeries(stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Add([]byte("s/new"), sale(now.Add(time.Hour), 1))
	if err := p.Advance(func(int64, []*Series) error { return nil }); err != nil {
		t.Fatal(err)
	}
	gap++
	checkCaughtUp(revived, p.spec.Index(now))
}
