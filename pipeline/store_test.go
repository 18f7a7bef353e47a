package pipeline

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// memStore is an in-memory Store that applies recorded writes.
type memStore map[string][]byte

var _ Store = memStore(nil)

func (m memStore) Get(key []byte, fn func([]byte) error) (bool, error) {
	v, ok := m[string(key)]
	if !ok {
		return false, nil
	}
	return true, fn(v)
}

func (m memStore) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return m.ScanFrom(prefix, nil, fn)
}

func (m memStore) ScanFrom(prefix, from []byte, fn func(k, v []byte) error) error {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, string(prefix)) && k >= string(from) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (m memStore) apply(ops []write) {
	for _, w := range ops {
		if w.del {
			delete(m, string(w.key))
		} else {
			m[string(w.key)] = w.val
		}
	}
}

func (m memStore) clone() memStore {
	c := make(memStore, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// write is one write of a commit, as recorded by writes.
type write struct {
	key, val   []byte
	del, final bool
}

// writes records a commit's writes in order: ordinary ones in ahead,
// final ones in final.
type writes struct{ ahead, final []write }

var _ Writes = (*writes)(nil)

func (w *writes) Set(k, v []byte) {
	w.ahead = append(w.ahead, write{key: bytes.Clone(k), val: bytes.Clone(v)})
}
func (w *writes) Delete(k []byte) { w.ahead = append(w.ahead, write{key: bytes.Clone(k), del: true}) }
func (w *writes) SetFinal(k, v []byte, _ time.Duration) {
	w.final = append(w.final, write{key: bytes.Clone(k), val: bytes.Clone(v), final: true})
}
func (w *writes) DeleteFinal(k []byte) {
	w.final = append(w.final, write{key: bytes.Clone(k), del: true, final: true})
}

// TestSplitCommitEveryPrefixLoads cuts a commit's ordinary writes at every
// position, as a crash inside a split Badger commit (state.Batch) does:
// the state left behind must load, and replaying the commit's records
// from the offset it still holds must give the same state, and the same
// stored keys, as no crash. With promotions on, every fifth day and day
// 87, which the last commit closes, are promotions that lift sales, so
// the replayed closes meet series' promotion states the crashed commit
// already wrote and a pool it did not.
func TestSplitCommitEveryPrefixLoads(t *testing.T) {
	for _, promotions := range []bool{false, true} {
		t.Run(fmt.Sprintf("promotions=%v", promotions), func(t *testing.T) { testSplitCommit(t, promotions) })
	}
}

func testSplitCommit(t *testing.T, promotions bool) {
	const series, days = 3, 90 // beyond the 84 buckets kept: old ones are deleted
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var recs []Record
	for d := range days {
		for i := range series {
			ts := start.Add(time.Duration(d)*24*time.Hour + time.Duration(10+i)*time.Hour)
			recs = append(recs, Record{Offset: int64(len(recs)), Key: fmt.Appendf(nil, "s/k%d", i),
				Value: fmt.Appendf(nil, `{"event_id":"e%d","store":"s","sku":"k%d","ts":"%s","qty":%d,"promo":%v}`,
					len(recs), i, ts.Format(time.RFC3339), (1+(d+i)%4)*(1+(d%5/4)*(i+1)), d%5 == 4 || d == 87)})
		}
	}
	cfg := testConfig()
	cfg.Promotions.On = promotions
	newEngine := func(st Store) *Engine {
		t.Helper()
		e, err := NewEngine(cfg, &countingSink{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Load(st, 0); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// run processes records [lo, hi) and returns the commit's writes.
	run := func(e *Engine, lo, hi int) *writes {
		t.Helper()
		e.BeginBatch()
		for i := lo; i < hi; i++ {
			if err := e.Process(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		var w writes
		if err := e.AppendState(&w, 0, int64(lo), int64(hi), false); err != nil {
			t.Fatal(err)
		}
		return &w
	}
	commit := func(st memStore, w *writes) {
		st.apply(w.ahead)
		st.apply(w.final)
	}

	before := memStore{}
	ref := newEngine(before)
	mid := len(recs) - 3*series // the last commit closes three days
	commit(before, run(ref, 0, mid))
	after := before.clone()
	last := run(ref, mid, len(recs))
	commit(after, last)
	deletes := 0
	for _, w := range last.ahead {
		if w.del {
			deletes++
		}
	}
	if deletes == 0 {
		t.Fatal("the last commit deletes no bucket: the test does not exercise history turnover")
	}

	for cut := range len(last.ahead) + 1 {
		st := before.clone()
		st.apply(last.ahead[:cut])
		e, err := NewEngine(cfg, &countingSink{})
		if err != nil {
			t.Fatal(err)
		}
		next, err := e.Load(st, 0)
		if err != nil {
			t.Fatalf("cut after %d of %d ordinary writes: %v", cut, len(last.ahead), err)
		}
		if next != int64(mid) {
			t.Fatalf("cut after %d writes: next offset %d, want %d", cut, next, mid)
		}
		commit(st, run(e, mid, len(recs)))
		for i := range series {
			id := fmt.Sprintf("s/k%d", i)
			got, want := e.part.Series(id), ref.part.Series(id)
			gb, _ := got.AppendBinary(nil)
			wb, _ := want.AppendBinary(nil)
			if !bytes.Equal(gb, wb) || !slices.Equal(got.QtyTo(nil, days), want.QtyTo(nil, days)) {
				t.Errorf("cut after %d writes: %s replayed to %v, want %v", cut, id, got.QtyTo(nil, days), want.QtyTo(nil, days))
			}
		}
		for k, v := range st {
			if w, ok := after[k]; !ok || !bytes.Equal(v, w) {
				t.Errorf("cut after %d writes: after the replay key %x holds %x, without the crash %x", cut, k, v, w)
			}
		}
		for k := range after {
			if _, ok := st[k]; !ok {
				t.Errorf("cut after %d writes: key %x is missing after the replay", cut, k)
			}
		}
	}
}
