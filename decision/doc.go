// Package decision turns the forecasts of a partition's series into
// decisions at every bucket close: which products are trending, and how
// much of each to reorder.
//
// # Overview
//
// Trends classifies each series at a close as rising, falling, emerging
// (a young series ramping up) or fading (heading to zero, a
// discontinuation risk), from its closed buckets, its published forecast
// and its own noise level (TrendState). Ranking keeps the best-scored
// series of each class per store for the close, in bounded memory, and
// Merge combines the rankings of several partitions, as the trends topic's
// consumers and the HTTP API do. TrendsRecord is the trends topic's JSON.
//
// Replenisher plans a periodic-review (R, S) policy per series (Policy:
// lead time, review period, target cycle service level, pack size): the
// distribution of demand over the lead time and over the cycle (lead time
// plus review period), the reorder point, safety stock, order-up-to level
// and, when the stock position is known, the order quantity. The demand
// over several buckets is the hard part, since per-step quantiles do not
// add up; Method says how each method treats the correlation between
// steps. The default, Conformal, calibrates each series' forecast totals
// on the totals that came, pooled over the partition (ReplenishState per
// series; the Replenisher keeps the pooled calibration). PlanRecord is the
// replenishment topic's JSON.
//
// At a close a driver calls, for every series that closed the bucket and
// has a published forecast: Trends.Classify and Ranking.Add (after a
// Ranking.Reset at the first), then Replenisher.Update and encodes the
// plan's PlanRecord; once the close is done, it encodes a TrendsRecord per
// store of the Ranking. pipeline.Engine does so when its
// Config.Decisions is on. The package is pure: no I/O and no goroutines.
//
// # Concurrency
//
// A Ranking or Replenisher belongs to one goroutine, like the partition
// it serves, and a state to its series' partition; a Trends is safe for
// concurrent use. Ranking.Top returns copies, which may be handed to
// other goroutines (the HTTP API's).
//
// # Invariants
//
// States encode to versioned bytes (AppendBinary) and decode only from
// their own version, otherwise failing with an error wrapping ErrState that
// names what is wrong. The per-series paths (Classify, Ranking.Add,
// Update) and the record encoders do not allocate in the steady state.
// Rankings are deterministic: ties order by series id.
// Replenishment quantiles never decrease with the level and are never
// negative. All series of a close see the calibration as it was after the
// close before, whatever their order.
package decision
