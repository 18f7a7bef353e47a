// Package stream is trendstream's edge and conductor: it consumes sales
// events from Kafka, runs them through window and model, publishes
// forecasts and dead letters, and commits state with input offsets.
//
// # Overview
//
// A Processor joins a kafka-go consumer group and, for every generation,
// starts one task per assigned partition. A task loads its partition's
// state from Badger, reads the partition from the offset stored there,
// and handles records in batches: decode and validate (bad records go to
// the dead-letter topic with a reason header), drop repeated event ids,
// count the sale in its event-time bucket, and at every bucket close
// forecast each series. After writing the batch's forecasts and dead
// letters to Kafka it commits, in one Badger transaction, the touched
// series, the new deduplication records, the watermark and the next
// offset. The group's committed offsets are only reported for lag tools.
//
// # Delivery
//
// State is exactly once: after a crash the task resumes from the offset
// committed with the state, and replays what followed. Outputs are at
// least once: they are written before the commit, so a crash in between
// sends them again. A forecast is identified by (series, origin).
//
// # Concurrency
//
// Each task goroutine owns its partition's window, models and buffers, so
// the record path takes no locks. The Processor's methods are safe for
// concurrent use. Run owns every goroutine it starts and returns after they
// exit.
package stream
