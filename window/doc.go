// Package window turns timestamped sales into event-time buckets per series
// and keeps features of each series up to date as buckets close.
//
// # Overview
//
// A Spec maps times to dense bucket indexes (hourly, daily or weekly, in a
// time zone, across daylight-saving changes). A Partition holds the series
// of one input partition and its watermark: the newest event time seen
// minus the allowed lateness. Add counts a sale in its series' open bucket
// or rejects it with ErrLate when its bucket has closed; Advance closes, in
// index order, every bucket whose end the watermark passed, for every
// series that has started, with zero quantity where a series had no sales.
// Each Series keeps a ring of its most recent closed buckets (quantity, mean
// price, promotion share) and incremental Features: moving averages, Holt
// level and trend, a seasonal profile, intermittency and price statistics.
//
// The package is pure computation: no I/O, no goroutines. Callers persist
// state through the versioned binary encodings of Series and Partition.
//
// # Concurrency
//
// A Partition and its Series belong to one goroutine; nothing here is safe
// for concurrent use. A Spec is an immutable value and may be shared.
//
// # Invariants
//
//   - Buckets of a partition close in index order, once each; a series'
//     closed buckets are contiguous from its first bucket on.
//   - An accepted sale is counted in exactly one bucket; a rejected one
//     changes nothing.
//   - Whether a sale is late depends only on the sales added before it, not
//     on how the caller batches them, so replays give identical state.
package window
