package state

import (
	"errors"
	"fmt"
)

// ErrDiskFull reports a commit refused because the state directory's file
// system has too little free space left for Badger to write it safely.
// Nothing of the batch was written; the same commit can be retried once
// space is freed.
var ErrDiskFull = errors.New("state: too little free disk space")

// DiskFullError says how much space a refused commit needed and how much
// was free. It wraps ErrDiskFull.
type DiskFullError struct {
	Dir        string
	Free, Need uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("%v in %s: %d bytes free, %d needed", ErrDiskFull, e.Dir, e.Free, e.Need)
}

func (e *DiskFullError) Unwrap() error { return ErrDiskFull }

// checkSpace returns a *DiskFullError when the state directory has less
// free space than a commit of batch bytes needs: room for the batch and
// two memtables. Badger writes its write-ahead log and the tables it
// flushes through memory maps, and a write to a mapped page the file
// system has no block for kills the process with SIGBUS instead of
// returning an error; the margin of two memtables covers the log's
// current file and the table flushed when it fills. An in-memory DB, or a
// platform where free space cannot be read, is never refused.
func (db *DB) checkSpace(batch int) error {
	if db.inMemory {
		return nil
	}
	free, ok := db.freeSpace(db.dir)
	if !ok {
		return nil
	}
	need := 2*uint64(db.memTable) + uint64(batch)
	if free < need {
		return &DiskFullError{Dir: db.dir, Free: free, Need: need}
	}
	return nil
}
