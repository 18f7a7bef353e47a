package faultdisk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Disk is a size-limited tmpfs mounted for one test.
type Disk struct {
	// Dir is the mount point.
	Dir  string
	size int64
}

// New mounts a tmpfs of size bytes on a new temporary directory, unmounted
// (with everything on it gone) when the test ends. It skips the test when
// the process may not mount file systems.
func New(t testing.TB, size int64) *Disk {
	t.Helper()
	dir := t.TempDir()
	err := unix.Mount("faultdisk", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(size, 10))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("faultdisk: mounting a tmpfs needs root or CAP_SYS_ADMIN: %v", err)
	}
	if err != nil {
		t.Fatalf("faultdisk: mounting a tmpfs of %d bytes on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("faultdisk: unmounting %s: %v", dir, err)
		}
	})
	return &Disk{Dir: dir, size: size}
}

// Free returns the bytes free on the disk.
func (d *Disk) Free() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(d.Dir, &st); err != nil {
		return 0, fmt.Errorf("faultdisk: reading free space of %s: %w", d.Dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Fill writes a file taking space until only leave bytes are free (or the
// disk is full), and returns a function that deletes it.
func (d *Disk) Fill(leave uint64) (release func() error, err error) {
	f, err := os.CreateTemp(d.Dir, "fill-*")
	if err != nil {
		return nil, fmt.Errorf("faultdisk: creating a fill file: %w", err)
	}
	defer f.Close()
	release = func() error { return os.Remove(f.Name()) }
	buf := make([]byte, 64<<10)
	for {
		free, err := d.Free()
		if err != nil {
			return release, err
		}
		if free <= leave {
			return release, nil
		}
		n := min(uint64(len(buf)), free-leave)
		if _, err := f.Write(buf[:n]); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return release, nil
			}
			return release, fmt.Errorf("faultdisk: filling %s: %w", filepath.Base(f.Name()), err)
		}
	}
}
