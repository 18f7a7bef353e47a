//go:build !linux

package faultdisk

import "testing"

// Disk is a size-limited tmpfs mounted for one test; Linux only.
type Disk struct {
	// Dir is the mount point.
	Dir string
}

// New skips the test: tmpfs mounts are Linux only.
func New(t testing.TB, size int64) *Disk {
	t.Skip("faultdisk: a size-limited tmpfs needs Linux")
	return nil
}

// Free is never reached outside Linux.
func (d *Disk) Free() (uint64, error) { return 0, nil }

// Fill is never reached outside Linux.
func (d *Disk) Fill(uint64) (func() error, error) { return func() error { return nil }, nil }
