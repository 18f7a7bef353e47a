// Package faultdisk gives tests a small file system of its own, to fill a
// state directory's disk without touching the machine's.
//
// # Overview
//
// New mounts a tmpfs of a given size on a fresh temporary directory and
// unmounts it when the test ends. Mounting needs Linux and root (or
// CAP_SYS_ADMIN); elsewhere New skips the test with a message saying so.
// Fill takes space on the mount, as another writer on a shared disk
// would, and its release frees it.
//
// tmpfs allocates pages as they are written, like a disk allocates
// blocks: a write through a memory map to a page the file system cannot
// allocate raises SIGBUS, as on a full disk.
//
// # Concurrency
//
// A Disk's methods may be called from any goroutine.
package faultdisk
