// Package decision turns the forecasts of a partition's series into
// decisions at every bucket close: which products are trending.
//
// # Overview
//
// Trends classifies each series at a close as rising, falling, emerging
// (a young series ramping up) or fading (heading to zero, a
// discontinuation risk), from its closed buckets, its published forecast
// and its own noise level (TrendState). Ranking keeps the best-scored
// series of each class per store for the close, in bounded memory, and
// Merge combines the rankings of several partitions, as the trends topic's
// consumers and the HTTP API will.
//
// At a close a driver calls, for every series that closed the bucket and
// has a published forecast, Trends.Classify and Ranking.Add (after a
// Ranking.Reset at the first). The package is pure: no I/O and no
// goroutines.
//
// # Concurrency
//
// A Trends or Ranking belongs to one goroutine, like the
// partition it serves; a state belongs to its series' partition.
//
// # Invariants
//
// The per-series paths (Classify, Ranking.Add) do not allocate in the
// steady state. Rankings are deterministic: ties order by series id.
package decision
