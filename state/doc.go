// Package state stores trendstream's state in Badger: bytes under keys laid
// out per partition, written in batches whose commit point is atomic.
//
// # Overview
//
// Keys are 'p', a big-endian partition number, a Kind byte and a name, so
// each partition's keyspace is one prefix that iterates in order and drops
// in one call; a small global index maps names (series ids) to partitions.
// A Batch collects the writes of one input batch: ordinary writes, and
// final writes that form the commit point (the input offset, watermark and
// deduplication records). DB.Commit writes a batch in one Badger
// transaction. A batch too large for one transaction has its ordinary
// writes committed first, in several transactions, and its final writes
// last, so callers make ordinary writes idempotent under replay.
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
