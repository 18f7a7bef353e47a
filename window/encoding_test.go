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

// snapshot encodes a partition and all its series.
func snapshot(t testing.TB, p *Partition) (meta []byte, series [][]byte) {
	t.Helper()
	meta, _ = p.AppendBinary(nil)
	p.Each(func(s *Series) bool {
		b, _ := s.AppendBinary(nil)
		series = append(series, b)
		return true
	})
	return meta, series
}

func restore(t testing.TB, cfg Config, meta []byte, series [][]byte) *Partition {
	t.Helper()
	p := newTestPartition(t, cfg)
	if err := p.UnmarshalBinary(meta); err != nil {
		t.Fatal(err)
	}
	for _, b := range series {
		if _, err := p.DecodeSeries(b); err != nil {
			t.Fatal(err)
		}
	}
	return p
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
		if !bytes.Equal(meta, m2) || !slices.EqualFunc(series, s2, bytes.Equal) {
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
		if _, err := p.DecodeSeries(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: DecodeSeries error %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := p.UnmarshalBinary(append([]byte{7}, meta[1:]...)); !errors.Is(err, ErrVersion) {
		t.Errorf("partition future version: %v", err)
	}
	hourly := newTestPartition(t, Config{Width: Hour})
	if err := hourly.UnmarshalBinary(meta); err == nil {
		t.Error("hourly partition accepted daily state")
	}
	if _, err := hourly.DecodeSeries(good); err == nil {
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
		f.Add(b)
		return true
	})
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, _ := NewPartition(Config{Width: Day})
		s, err := q.DecodeSeries(b)
		if err != nil {
			return
		}
		again, _ := s.AppendBinary(nil)
		if _, err := q.DecodeSeries(again); err != nil {
			t.Fatalf("re-decoding an accepted series: %v", err)
		}
	})
}
