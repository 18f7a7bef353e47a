package state

import (
	"errors"
	"fmt"
	"testing"

	"github.com/trendstream/trendstream/internal/faultdisk"
)

// TestCommitRefusedOnFullDisk checks the free-space check with a fake
// free-space reading: a commit needs two memtables plus the batch free,
// writes nothing when refused, and succeeds once space is back.
func TestCommitRefusedOnFullDisk(t *testing.T) {
	const memTable = 1 << 20
	for _, tc := range []struct {
		name string
		free uint64
		full bool
	}{
		{"plenty", 1 << 30, false},
		{"exactly enough", 2*memTable + 12, false},
		{"one byte short", 2*memTable + 11, true},
		{"nothing", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Config{MemTableSize: memTable})
			free := tc.free
			db.freeSpace = func(string) (uint64, bool) { return free, true }
			var b Batch
			b.Set([]byte("key1"), []byte("val1"))     // 8 bytes
			b.SetFinal([]byte("m"), []byte("off"), 0) // 4 bytes
			_, err := db.Commit(&b)
			var dfe *DiskFullError
			if got := errors.As(err, &dfe); got != tc.full || errors.Is(err, ErrDiskFull) != tc.full {
				t.Fatalf("Commit with %d bytes free: %v, want disk full %v", tc.free, err, tc.full)
			}
			if _, found := get(t, db, []byte("m")); found == tc.full {
				t.Errorf("commit point written %v after a commit refused %v", found, tc.full)
			}
			if tc.full {
				if dfe.Free != tc.free || dfe.Need != 2*memTable+12 {
					t.Errorf("DiskFullError %+v", dfe)
				}
				free = 1 << 30
				if _, err := db.Commit(&b); err != nil {
					t.Fatalf("retried commit: %v", err)
				}
				if v, _ := get(t, db, []byte("key1")); v != "val1" {
					t.Errorf("retried commit wrote %q", v)
				}
			}
		})
	}
}

// TestFillingDisk commits to a DB on a small real disk while another
// writer fills it: commits start failing with ErrDiskFull instead of the
// process dying of SIGBUS, Close does not flush, and after the space is
// freed the DB reopens with every acknowledged commit.
func TestFillingDisk(t *testing.T) {
	const memTable = 1 << 20
	d := faultdisk.New(t, 16<<20)
	cfg := Config{Dir: d.Dir, MemTableSize: memTable}
	db, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 8<<10)
	commit := func(i int) error {
		var b Batch
		for j := range 16 {
			b.Set(fmt.Appendf(nil, "k%05d-%02d", i, j), value)
		}
		b.SetFinal([]byte("next"), fmt.Appendf(nil, "%d", i+1), 0)
		_, err := db.Commit(&b)
		return err
	}
	var release func() error
	acked := 0
	for i := 0; ; i++ {
		if i == 20 {
			// Another writer takes most of what is left.
			if release, err = d.Fill(4 * memTable); err != nil {
				t.Fatal(err)
			}
		}
		err := commit(i)
		if errors.Is(err, ErrDiskFull) {
			break
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		acked = i + 1
		if i > 10000 {
			t.Fatal("the disk never filled")
		}
	}
	if acked < 20 {
		t.Fatalf("only %d commits before the disk filled", acked)
	}
	// The refused commit needed more than two memtables; leave less than
	// that, which Close needs to flush.
	releaseMore, err := d.Fill(memTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Close on a full disk: %v, want ErrDiskFull", err)
	}
	// The process would exit here; badger is still open, so close it
	// after freeing the space, as the next start does.
	if err := errors.Join(release(), releaseMore()); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	if v, _ := get(t, db, []byte("next")); v != fmt.Sprint(acked) {
		t.Errorf("next = %q after reopening, want %d", v, acked)
	}
	for i := range acked {
		if _, found := get(t, db, fmt.Appendf(nil, "k%05d-15", i)); !found {
			t.Fatalf("commit %d lost", i)
		}
	}
}

// BenchmarkFreeSpace measures the statfs call the free-space check adds
// to every commit of a DB on disk, to compare with BenchmarkCommit.
func BenchmarkFreeSpace(b *testing.B) {
	dir := b.TempDir()
	b.ReportAllocs()
	for range b.N {
		if _, ok := freeSpace(dir); !ok {
			b.Fatal("no free space reading")
		}
	}
}
