package window

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// stored is a series as a caller stores it: its state and its closed
// buckets.
type stored struct {
	state []byte
	ring  []IndexedBucket
}

func ringOf(s *Series) []IndexedBucket {
	var ring []IndexedBucket
	oldest := s.Closed() - int64(s.Len()) + 1
	for i := range s.Len() {
		ring = append(ring, IndexedBucket{oldest + int64(i), s.At(i)})
	}
	return ring
}

// snapshot encodes a partition and all its series.
func snapshot(t testing.TB, p *Partition) (meta []byte, series []stored) {
	t.Helper()
	meta, _ = p.AppendBinary(nil)
	p.Each(func(s *Series) bool {
		b, _ := s.AppendBinary(nil)
		series = append(series, stored{b, ringOf(s)})
		return true
	})
	return meta, series
}

func restore(t testing.TB, cfg Config, meta []byte, series []stored) *Partition {
	t.Helper()
	p := newTestPartition(t, cfg)
	if err := p.UnmarshalBinary(meta); err != nil {
		t.Fatal(err)
	}
	for _, st := range series {
		if _, err := p.DecodeSeries(st.state, st.ring); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func storedEqual(a, b []stored) bool {
	return slices.EqualFunc(a, b, func(x, y stored) bool {
		return bytes.Equal(x.state, y.state) && slices.Equal(x.ring, y.ring)
	})
}

// randomEvents returns a deterministic stream of events over a few series,
// out of order by up to two hours.
func randomEvents(seed uint64, n int) ([]string, []Sale) {
	r := rand.New(rand.NewPCG(seed, 1))
	ids := make([]string, n)
	sales := make([]Sale, n)
	for i := range n {
		ids[i] = fmt.Sprintf("st/%d", r.IntN(5))
		jitter := time.Duration(r.IntN(120)) * time.Minute
		sales[i] = Sale{
			Time:  day0.Add(time.Duration(i)*17*time.Minute - jitter),
			Qty:   float64(r.IntN(4)),
			Price: 1 + float64(r.IntN(3)),
			Promo: r.IntN(5) == 0,
		}
	}
	return ids, sales
}

// run feeds events to p and returns a log of closes with every closed
// series' encoding, so two runs can be compared byte for byte.
func run(t testing.TB, p *Partition, ids []string, sales []Sale) []string {
	t.Helper()
	var log []string
	for i := range sales {
		_, err := p.Add([]byte(ids[i]), &sales[i])
		if err != nil && !errors.Is(err, ErrLate) {
			t.Fatal(err)
		}
		p.Advance(func(idx int64, closed []*Series) error {
			for _, s := range closed {
				b, _ := s.AppendBinary(nil)
				log = append(log, fmt.Sprintf("%d %x", idx, b))
			}
			return nil
		})
	}
	return log
}

func TestEncodingRoundTripContinues(t *testing.T) {
	cfg := Config{Width: Hour, Lateness: 90 * time.Minute, History: 28}
	ids, sales := randomEvents(7, 3000)
	for _, cut := range []int{1, 10, 777, 2999} {
		straight := newTestPartition(t, cfg)
		before := run(t, straight, ids[:cut], sales[:cut])
		meta, series := snapshot(t, straight)
		resumed := restore(t, cfg, meta, series)

		m2, s2 := snapshot(t, resumed)
		if !bytes.Equal(meta, m2) || !storedEqual(series, s2) {
			t.Fatalf("cut %d: re-encoding a restored partition differs", cut)
		}
		after := run(t, straight, ids[cut:], sales[cut:])
		afterResumed := run(t, resumed, ids[cut:], sales[cut:])
		if !slices.Equal(after, afterResumed) {
			t.Fatalf("cut %d: restored partition diverged after %d closes", cut, len(before))
		}
	}
}

func TestRestoreLaggingSeriesCatchesUp(t *testing.T) {
	cfg := Config{Width: Day}
	p := newTestPartition(t, cfg)
	p.Add([]byte("s/a"), sale(at(0, 1), 1))
	p.Add([]byte("s/a"), sale(at(1, 1), 2))
	p.Advance(func(int64, []*Series) error { return nil })
	_, old := snapshot(t, p)
	// The partition moves on, but only its partition-level state is kept.
	p.Add([]byte("s/b"), sale(at(3, 1), 1))
	p.Advance(func(int64, []*Series) error { return nil })
	meta, _ := snapshot(t, p)

	q := restore(t, cfg, meta, old)
	q.Add([]byte("s/b"), sale(at(4, 1), 1))
	var closed []string
	q.Advance(func(idx int64, ss []*Series) error {
		for _, s := range ss {
			closed = append(closed, fmt.Sprintf("%d:%s", idx-q.spec.Index(day0), s.ID()))
		}
		return nil
	})
	// s/b is unknown to the restored partition, so it starts afresh on day 4.
	if want := []string{"3:s/a"}; !slices.Equal(closed, want) {
		t.Fatalf("closed %v, want %v", closed, want)
	}
	if got := q.Series("s/a").QtyTo(nil, 10); !slices.Equal(got, []float64{1, 2, 0, 0}) {
		t.Errorf("caught-up series %v, want [1 2 0 0]", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day})
	p.Add([]byte("s/a"), sale(at(0, 1), 1))
	good, _ := p.Series("s/a").AppendBinary(nil)
	meta, _ := p.AppendBinary(nil)
	p.Add([]byte("s/a"), sale(at(3, 1), 1))
	p.Advance(func(int64, []*Series) error { return nil })
	closed, _ := p.Series("s/a").AppendBinary(nil)
	ring := ringOf(p.Series("s/a"))

	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"future version", append([]byte{9}, good[1:]...), ErrVersion},
		{"truncated", good[:len(good)-3], ErrCorrupt},
		{"trailing", append(slices.Clone(good), 0), ErrCorrupt},
		{"huge count", []byte{1, 1, 'x', 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrCorrupt},
	} {
		if _, err := p.DecodeSeries(tc.b, nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: DecodeSeries error %v, want %v", tc.name, err, tc.want)
		}
	}
	for name, r := range map[string][]IndexedBucket{
		"no ring":        nil,
		"gap":            {ring[0], ring[2]},
		"missing newest": ring[:len(ring)-1],
		"beyond closed":  append(slices.Clone(ring), IndexedBucket{ring[len(ring)-1].Index + 1, Bucket{}}),
	} {
		s, err := p.DecodeSeries(closed, r)
		if name == "beyond closed" {
			if err != nil || s.Len() != len(ring) {
				t.Errorf("%s: %v, %d buckets", name, err, s.Len())
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("ring %s: DecodeSeries error %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := DecodeBucket([]byte{1, 2}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short bucket: %v", err)
	}
	if err := p.UnmarshalBinary(append([]byte{7}, meta[1:]...)); !errors.Is(err, ErrVersion) {
		t.Errorf("partition future version: %v", err)
	}
	hourly := newTestPartition(t, Config{Width: Hour})
	if err := hourly.UnmarshalBinary(meta); err == nil {
		t.Error("hourly partition accepted daily state")
	}
	if _, err := hourly.DecodeSeries(good, nil); err == nil {
		t.Error("hourly partition accepted a series with a weekly-period profile")
	}
}

func FuzzDecodeSeries(f *testing.F) {
	p, _ := NewPartition(Config{Width: Day, Lateness: time.Hour})
	ids, sales := randomEvents(3, 200)
	for i := range sales {
		p.Add([]byte(ids[i]), &sales[i])
		p.Advance(func(int64, []*Series) error { return nil })
	}
	p.Each(func(s *Series) bool {
		b, _ := s.AppendBinary(nil)
		f.Add(b, int64(s.Closed()-int64(s.Len())+1), s.Len())
		return true
	})
	f.Add([]byte{}, int64(0), 0)
	f.Add([]byte{1}, int64(0), 1)
	f.Fuzz(func(t *testing.T, b []byte, from int64, n int) {
		q, _ := NewPartition(Config{Width: Day})
		var ring []IndexedBucket
		for i := range min(max(n, 0), 200) {
			ring = append(ring, IndexedBucket{from + int64(i), Bucket{Qty: float64(i)}})
		}
		s, err := q.DecodeSeries(b, ring)
		if err != nil {
			return
		}
		again, _ := s.AppendBinary(nil)
		if _, err := q.DecodeSeries(again, ringOf(s)); err != nil {
			t.Fatalf("re-decoding an accepted series: %v", err)
		}
	})
}

// TestChangesMirrorTheRing keeps a map of stored buckets up to date with
// Changes through closes, ring wrap-around and a decode, and checks it
// always equals the ring.
func TestChangesMirrorTheRing(t *testing.T) {
	cfg := Config{Width: Day, History: 28}
	p := newTestPartition(t, cfg)
	store := map[int64]Bucket{}
	apply := func(s *Series) {
		s.Changes(func(idx int64, b Bucket) { store[idx] = b }, func(idx int64) {
			if _, ok := store[idx]; !ok {
				t.Fatalf("delete of bucket %d that was never stored", idx)
			}
			delete(store, idx)
		})
	}
	check := func(s *Series, when string) {
		t.Helper()
		ring := ringOf(s)
		if len(store) != len(ring) {
			t.Fatalf("%s: store has %d buckets, ring %d", when, len(store), len(ring))
		}
		for _, rb := range ring {
			if store[rb.Index] != rb.Bucket {
				t.Fatalf("%s: stored bucket %d is %v, ring has %v", when, rb.Index, store[rb.Index], rb.Bucket)
			}
		}
	}
	for d := range 100 {
		p.Add([]byte("s/a"), sale(at(float64(d), 12), float64(d%5)))
		p.Advance(func(int64, []*Series) error { return nil })
		if d%7 == 3 || d > 90 {
			apply(p.Series("s/a"))
			check(p.Series("s/a"), fmt.Sprintf("day %d", d))
		}
		if d == 60 {
			// A commit stores the changes with the state.
			apply(p.Series("s/a"))
			meta, series := snapshot(t, p)
			p = restore(t, cfg, meta, series)
		}
	}
}

// TestSeriesSerial checks that every Series a partition creates has its
// own serial number, and that decoding a state gives a new one, also when
// it replaces the state of a series in place.
func TestSeriesSerial(t *testing.T) {
	p := newTestPartition(t, Config{Width: Day})
	a, _ := p.Add([]byte("s/a"), sale(at(0, 1), 1))
	b, _ := p.Add([]byte("s/b"), sale(at(0, 1), 1))
	again, _ := p.Add([]byte("s/a"), sale(at(0, 2), 1))
	if a.Serial() != 1 || b.Serial() != 2 || again != a {
		t.Fatalf("serials %d and %d, want 1 and 2 (same series again: %v)", a.Serial(), b.Serial(), again == a)
	}
	st, _ := a.AppendBinary(nil)
	q := newTestPartition(t, Config{Width: Day})
	for _, c := range []struct {
		p    *Partition
		want uint64
	}{{q, 1}, {p, 3}} {
		s, err := c.p.DecodeSeries(st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Serial() != c.want {
			t.Errorf("decoded serial %d, want %d", s.Serial(), c.want)
		}
	}
	if a.Serial() != 3 {
		t.Errorf("serial %d after its state was replaced, want 3", a.Serial())
	}
}
