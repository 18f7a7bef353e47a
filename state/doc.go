// Package state stores trendstream's state in Badger: bytes under keys,
// written in batches whose commit point is atomic.
//
// # Overview
//
// Callers lay out their keys (trendstream's layout is in package
// pipeline): a prefix per keyspace lets Scan iterate one in order and
// DeletePrefix drop one without blocking the others. A Batch collects the writes of one input batch: ordinary writes, and
// final writes that form the commit point (the input offset, watermark and
// deduplication records). DB.Commit writes a batch in one Badger
// transaction. A batch too large for one transaction has its ordinary
// writes committed first, in several transactions, and its final writes
// last, so callers make ordinary writes idempotent under replay.
//
// Commit refuses a batch with ErrDiskFull, writing nothing, when the
// directory's file system lacks room for it and two memtables: Badger
// writes through memory maps, and a full disk would kill the process with
// SIGBUS instead of returning an error. Close then skips Badger's flush.
// The check reads free space on Linux only.
//
// The package knows no domain type: callers encode their own values.
//
// # Concurrency
//
// A DB is safe for concurrent use; partition tasks write disjoint
// keyspaces. Values passed to Get and Scan callbacks are valid only inside
// the callback (Badger's zero-copy reads). A Batch belongs to one
// goroutine.
package state
