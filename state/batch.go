package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Batch collects the writes of one commit. It has two parts:
//
//   - final writes (SetFinal, DeleteFinal) form the commit point: they are
//     always written together, in one transaction, and last. A partition's
//     input offset, watermark and deduplication keys belong here.
//   - ordinary writes (Set) are written in the same transaction when the
//     batch fits in one, which is the normal case. A batch too large for a
//     single Badger transaction has its ordinary writes committed first, in
//     as many transactions as needed, then the final writes. Ordinary writes
//     must therefore be idempotent under replay: writing them again after
//     re-reading the same input must give the same state. Series states
//     carrying the offset of the last record they applied are.
//
// Keys and values are copied into the batch, so callers may reuse their
// buffers at once. A Batch is not safe for concurrent use; reuse one with
// Reset.
type Batch struct {
	ahead []entry
	final []entry
	buf   []byte
}

type entry struct {
	key, val [2]int // [start, end) in buf
	ttl      time.Duration
	del      bool
}

func (b *Batch) add(list []entry, key, val []byte, ttl time.Duration, del bool) []entry {
	e := entry{ttl: ttl, del: del}
	e.key = [2]int{len(b.buf), len(b.buf) + len(key)}
	b.buf = append(b.buf, key...)
	e.val = [2]int{len(b.buf), len(b.buf) + len(val)}
	b.buf = append(b.buf, val...)
	return append(list, e)
}

// Set writes value under key, possibly ahead of the commit point (see
// Batch). Ordinary writes are committed in the order they were added.
func (b *Batch) Set(key, value []byte) { b.ahead = b.add(b.ahead, key, value, 0, false) }

// Delete deletes key, possibly ahead of the commit point, in order with the
// ordinary writes.
func (b *Batch) Delete(key []byte) { b.ahead = b.add(b.ahead, key, nil, 0, true) }

// SetFinal writes value under key at the commit point. A positive ttl makes
// Badger expire the key after that long.
func (b *Batch) SetFinal(key, value []byte, ttl time.Duration) {
	b.final = b.add(b.final, key, value, ttl, false)
}

// DeleteFinal deletes key at the commit point.
func (b *Batch) DeleteFinal(key []byte) { b.final = b.add(b.final, key, nil, 0, true) }

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ahead) + len(b.final) }

// Bytes returns the size of the keys and values in the batch.
func (b *Batch) Bytes() int { return len(b.buf) }

// Each calls fn for every write in commit order: ordinary writes in the
// order they were added, then final writes. value is nil for deletes. Key
// and value are valid until the batch changes.
func (b *Batch) Each(fn func(key, value []byte, ttl time.Duration)) {
	for _, list := range [][]entry{b.ahead, b.final} {
		for _, e := range list {
			var v []byte
			if !e.del {
				v = b.buf[e.val[0]:e.val[1]:e.val[1]]
			}
			fn(b.buf[e.key[0]:e.key[1]:e.key[1]], v, e.ttl)
		}
	}
}

// Reset empties the batch, keeping its storage.
func (b *Batch) Reset() {
	b.ahead, b.final, b.buf = b.ahead[:0], b.final[:0], b.buf[:0]
}

// Mark is a position in a batch, for Rewind.
type Mark struct{ ahead, final, buf int }

// Mark returns the batch's current position.
func (b *Batch) Mark() Mark { return Mark{len(b.ahead), len(b.final), len(b.buf)} }

// Rewind drops the writes added since m was taken, keeping the others. m
// must come from Mark since the batch was last reset.
func (b *Batch) Rewind(m Mark) {
	b.ahead, b.final, b.buf = b.ahead[:m.ahead], b.final[:m.final], b.buf[:m.buf]
}

// CommitStats describes how a batch was committed.
type CommitStats struct {
	// Transactions is the number of Badger transactions used: 1 unless the
	// batch was too large for one.
	Transactions int
}

// Commit writes the batch: in one transaction when it fits, otherwise its
// ordinary writes first and its final writes last (see Batch). The batch's
// buffers must not be changed until Commit returns.
//
// Commit writes nothing and returns an error wrapping ErrDiskFull (a
// *DiskFullError) when the state directory lacks the free space the
// batch needs (see DB.checkSpace). The check sees a disk that fills
// gradually; space taken by others between the check and Badger's write
// is not covered.
func (db *DB) Commit(b *Batch) (CommitStats, error) {
	if err := db.checkSpace(len(b.buf)); err != nil {
		return CommitStats{}, fmt.Errorf("state: committing batch of %d writes: %w", b.Len(), err)
	}
	txn := db.db.NewTransaction(true)
	err := b.apply(txn, b.ahead)
	if err == nil {
		err = b.apply(txn, b.final)
	}
	if err == nil {
		if err = txn.Commit(); err != nil {
			return CommitStats{}, fmt.Errorf("state: committing batch of %d writes: %w", b.Len(), err)
		}
		return CommitStats{Transactions: 1}, nil
	}
	txn.Discard()
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return CommitStats{}, fmt.Errorf("state: writing batch: %w", err)
	}
	return db.commitSplit(b)
}

// commitSplit writes the ordinary writes in as many transactions as they
// need, then the final writes in one.
func (db *DB) commitSplit(b *Batch) (CommitStats, error) {
	var stats CommitStats
	rest := b.ahead
	for len(rest) > 0 {
		txn := db.db.NewTransaction(true)
		n := 0
		for ; n < len(rest); n++ {
			if err := b.apply(txn, rest[n:n+1]); err != nil {
				if !errors.Is(err, badger.ErrTxnTooBig) || n == 0 {
					txn.Discard()
					return stats, fmt.Errorf("state: writing split batch: %w", err)
				}
				break
			}
		}
		if err := txn.Commit(); err != nil {
			return stats, fmt.Errorf("state: committing split batch part: %w", err)
		}
		stats.Transactions++
		rest = rest[n:]
	}
	txn := db.db.NewTransaction(true)
	defer txn.Discard()
	if err := b.apply(txn, b.final); err != nil {
		return stats, fmt.Errorf("state: writing %d final writes: %w", len(b.final), err)
	}
	if err := txn.Commit(); err != nil {
		return stats, fmt.Errorf("state: committing final writes: %w", err)
	}
	stats.Transactions++
	return stats, nil
}

func (b *Batch) apply(txn *badger.Txn, list []entry) error {
	for _, e := range list {
		key := b.buf[e.key[0]:e.key[1]:e.key[1]]
		if e.del {
			if err := txn.Delete(key); err != nil {
				return err
			}
			continue
		}
		be := badger.NewEntry(key, b.buf[e.val[0]:e.val[1]:e.val[1]])
		if e.ttl > 0 {
			be = be.WithTTL(e.ttl)
		}
		if err := txn.SetEntry(be); err != nil {
			return err
		}
	}
	return nil
}
