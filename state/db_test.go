package state

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// openTest opens a DB in a temporary directory (or in memory) that is
// closed when the test ends.
func openTest(t testing.TB, cfg Config) *DB {
	t.Helper()
	if !cfg.InMemory && cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	db, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func get(t testing.TB, db *DB, key []byte) (string, bool) {
	t.Helper()
	var v string
	found, err := db.Get(key, func(b []byte) error { v = string(b); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return v, found
}

func TestCommitAndRead(t *testing.T) {
	db := openTest(t, Config{InMemory: true})
	var b Batch
	b.Set([]byte("p3s/b"), []byte("B"))
	b.Set([]byte("p3s/a"), []byte("A"))
	b.Set([]byte("p4s/c"), []byte("C"))
	b.SetFinal([]byte("p3m"), []byte("offset=10"), 0)
	b.Set([]byte("is/a"), []byte("3"))
	if st, err := db.Commit(&b); err != nil || st.Transactions != 1 {
		t.Fatalf("Commit = %+v, %v", st, err)
	}

	if v, ok := get(t, db, []byte("p3m")); !ok || v != "offset=10" {
		t.Errorf("meta = %q, %v", v, ok)
	}
	if _, ok := get(t, db, []byte("p3s/x")); ok {
		t.Error("missing key found")
	}
	var seen []string
	err := db.Scan([]byte("p3s"), func(k, v []byte) error {
		seen = append(seen, fmt.Sprintf("%s=%s", k[2:], v))
		return nil
	})
	if err != nil || fmt.Sprint(seen) != "[s/a=A s/b=B]" {
		t.Errorf("Scan = %v, %v; want partition 3's series in key order", seen, err)
	}
	if v, _ := get(t, db, []byte("is/a")); v != "3" {
		t.Errorf("index = %q", v)
	}

	boom := errors.New("stop")
	if err := db.Scan([]byte("p3"), func(k, v []byte) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Scan did not return the callback's error: %v", err)
	}

	if err := db.DeletePrefix([]byte("p3")); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, db, []byte("p3s/a")); ok {
		t.Error("dropped key still there")
	}
	if _, ok := get(t, db, []byte("p4s/c")); !ok {
		t.Error("another partition's key was dropped")
	}
}

func TestBatchCopiesAndResets(t *testing.T) {
	db := openTest(t, Config{InMemory: true})
	var b Batch
	key, val := []byte("k1"), []byte("v1")
	b.Set(key, val)
	copy(key, "zz")
	copy(val, "zz")
	b.DeleteFinal([]byte("gone"))
	if b.Len() != 2 || b.Bytes() != 8 {
		t.Errorf("Len, Bytes = %d, %d", b.Len(), b.Bytes())
	}
	var seen []string
	b.Each(func(k, v []byte, ttl time.Duration) { seen = append(seen, fmt.Sprintf("%s=%s/%v", k, v, v == nil)) })
	if fmt.Sprint(seen) != "[k1=v1/false gone=/true]" {
		t.Errorf("Each saw %v", seen)
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, db, []byte("k1")); v != "v1" {
		t.Errorf("k1 = %q: the batch did not copy its input", v)
	}
	b.Reset()
	if b.Len() != 0 || b.Bytes() != 0 {
		t.Error("Reset left writes behind")
	}
	b.Set([]byte("k2"), []byte("v"))
	b.Delete([]byte("k2"))
	b.SetFinal([]byte("k1"), []byte("v2"), 0)
	b.DeleteFinal([]byte("k1"))
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, db, []byte("k1")); ok {
		t.Error("k1 survived a later delete in the same batch")
	}
	if _, ok := get(t, db, []byte("k2")); ok {
		t.Error("k2 survived a later ordinary delete in the same batch")
	}
}

func TestCommitSplitsOversizedBatches(t *testing.T) {
	// A 1 MiB memtable caps transactions at about 150 KiB.
	db := openTest(t, Config{InMemory: true, MemTableSize: 1 << 20})
	var b Batch
	val := bytes.Repeat([]byte("x"), 1000)
	for i := range 1000 {
		b.Set(fmt.Appendf(nil, "p0s/%04d", i), val)
	}
	b.SetFinal([]byte("p0m"), []byte("done"), 0)
	st, err := db.Commit(&b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Transactions < 5 {
		t.Errorf("a 1 MB batch took %d transactions", st.Transactions)
	}
	n := 0
	db.Scan([]byte("p0s"), func(k, v []byte) error { n++; return nil })
	if v, _ := get(t, db, []byte("p0m")); n != 1000 || v != "done" {
		t.Errorf("after split commit: %d series, meta %q", n, v)
	}

	b.Reset()
	b.SetFinal([]byte("huge"), bytes.Repeat([]byte("y"), 400<<10), 0)
	if _, err := db.Commit(&b); err == nil {
		t.Error("final writes larger than a transaction were accepted")
	}
}

func TestTTL(t *testing.T) {
	db := openTest(t, Config{InMemory: true})
	var b Batch
	b.SetFinal([]byte("short"), []byte("1"), time.Second)
	b.SetFinal([]byte("long"), []byte("1"), time.Hour)
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, db, []byte("short")); !ok {
		t.Fatal("key expired at once")
	}
	time.Sleep(2100 * time.Millisecond)
	if _, ok := get(t, db, []byte("short")); ok {
		t.Error("key outlived its TTL")
	}
	if _, ok := get(t, db, []byte("long")); !ok {
		t.Error("long-lived key expired")
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.SetFinal([]byte("k"), []byte("v"), 0)
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	db = openTest(t, Config{Dir: dir})
	if v, ok := get(t, db, []byte("k")); !ok || v != "v" {
		t.Errorf("after reopen k = %q, %v", v, ok)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{InMemory: true, BlockCacheSize: -1},
		{InMemory: true, MemTableSize: 1000},
		{InMemory: true, GCInterval: -time.Second},
		{InMemory: true, NumMemtables: -1},
	} {
		if db, err := Open(cfg); err == nil {
			db.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			db := openTest(b, Config{})
			val := bytes.Repeat([]byte("v"), 1500)
			var batch Batch
			b.ReportAllocs()
			b.SetBytes(int64(n * 1500))
			for i := range b.N {
				batch.Reset()
				for j := range n {
					batch.Set(fmt.Appendf(nil, "p0s/%d", j), val)
				}
				batch.SetFinal([]byte("p0m"), fmt.Appendf(nil, "%d", i), 0)
				if _, err := db.Commit(&batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDeletePrefixWhileCommitting clears a large keyspace while another
// keyspace commits: neither blocks nor fails the other.
func TestDeletePrefixWhileCommitting(t *testing.T) {
	db := openTest(t, Config{})
	var b Batch
	for i := range 25000 {
		b.Set(fmt.Appendf(nil, "p1s/%05d", i), []byte("v"))
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.DeletePrefix([]byte("p1")) }()
	for i := range 200 {
		var c Batch
		c.SetFinal([]byte("p2m"), fmt.Appendf(nil, "%d", i), 0)
		if _, err := db.Commit(&c); err != nil {
			t.Fatalf("commit %d while deleting another keyspace: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := 0
	db.Scan([]byte("p1"), func(k, v []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d keys left after DeletePrefix", n)
	}
}

func TestBatchRewind(t *testing.T) {
	db := openTest(t, Config{InMemory: true})
	var b Batch
	b.Set([]byte("kept"), []byte("1"))
	b.SetFinal([]byte("kept-final"), []byte("1"), 0)
	m := b.Mark()
	b.Set([]byte("dropped"), []byte("2"))
	b.DeleteFinal([]byte("kept-final"))
	b.Rewind(m)
	b.Set([]byte("after"), []byte("3"))
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"kept": true, "kept-final": true, "dropped": false, "after": true} {
		if _, ok := get(t, db, []byte(key)); ok != want {
			t.Errorf("%s stored: %v, want %v", key, ok, want)
		}
	}
}

// TestSnapshot checks that reads through one View see one version of the
// DB while commits go on, and that ScanFrom resumes a scan at a key.
func TestSnapshot(t *testing.T) {
	db := openTest(t, Config{InMemory: true})
	var b Batch
	for _, k := range []string{"a1", "a2", "a3", "a4", "b1"} {
		b.Set([]byte(k), []byte("old"))
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	err := db.View(func(s *Snapshot) error {
		b.Reset()
		b.Set([]byte("a2"), []byte("new"))
		b.Delete([]byte("a3"))
		if _, err := db.Commit(&b); err != nil {
			return err
		}
		var seen []string
		err := s.ScanFrom([]byte("a"), []byte("a2"), func(k, v []byte) error {
			seen = append(seen, fmt.Sprintf("%s=%s", k, v))
			return nil
		})
		if want := "[a2=old a3=old a4=old]"; err != nil || fmt.Sprint(seen) != want {
			t.Errorf("ScanFrom in the snapshot = %v, %v; want %s", seen, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, db, []byte("a2")); v != "new" {
		t.Errorf("after the view a2 = %q, want the commit's", v)
	}
	var seen []string
	db.ScanFrom([]byte("a"), []byte("0"), func(k, v []byte) error { seen = append(seen, string(k)); return nil })
	if fmt.Sprint(seen) != "[a1 a2 a4]" {
		t.Errorf("ScanFrom before the prefix = %v, want the whole prefix", seen)
	}
}
