package faultdisk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFillAndRelease checks that the mount is as small as asked, that
// writes beyond it fail with ENOSPC, and that Fill's release frees space.
func TestFillAndRelease(t *testing.T) {
	d := New(t, 4<<20)
	free, err := d.Free()
	if err != nil {
		t.Fatal(err)
	}
	if free > 4<<20 || free < 3<<20 {
		t.Fatalf("a 4 MiB disk has %d bytes free", free)
	}
	release, err := d.Fill(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if free, _ = d.Free(); free > 64<<10 {
		t.Errorf("%d bytes free after filling to 64 KiB", free)
	}
	err = os.WriteFile(filepath.Join(d.Dir, "big"), make([]byte, 1<<20), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 1 MiB to a full disk: %v, want ENOSPC", err)
	}
	os.Remove(filepath.Join(d.Dir, "big"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if free, _ = d.Free(); free < 3<<20 {
		t.Errorf("%d bytes free after the release", free)
	}
}
