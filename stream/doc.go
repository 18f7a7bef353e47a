// Package stream is trendstream's live Kafka driver: it consumes sales
// events from Kafka, runs each partition through a pipeline.Engine,
// publishes forecasts and dead letters, and commits state with input
// offsets.
//
// # Overview
//
// A Processor joins a kafka-go consumer group and, for every generation,
// starts one task per assigned partition (task.go). A task restores its
// partition from the changelog when its local store is missing or behind
// (changelog.go), loads the engine's state from Badger, reads the
// partition from the offset stored there with its own fetcher
// (fetch.go), and handles records in batches: the engine decodes,
// validates, deduplicates, windows and forecasts; the task is the engine's
// Sink and turns what it produces into Kafka messages. After writing the
// batch's forecasts and dead letters it mirrors the batch's state writes
// to the changelog and commits them, with the next offset, in one Badger
// transaction. Standby (processor.go) keeps unowned partitions warm from
// the changelog. The package also serves the HTTP API (http.go), keeps the
// Prometheus metrics (metrics.go) and holds the produce and follow tools.
//
// A task whose partition has had no input for Config.IdleTimeout moves
// its watermark with the clock, so its buckets still close. Its writes
// never block on one record: a dead letter too large for the dead-letter
// topic is cut to a bounded prefix with the original's digest in headers,
// and a record the brokers refuse for itself is dropped and counted rather
// than retried forever.
//
// The partitions' learners mix their weights through the compacted models
// topic (models.go, Config.Mix): at every mixing round a task publishes
// its learner's snapshot and mixes in the latest of every other
// partition's, which a follower goroutine of the processor keeps.
//
// Everything that is not Kafka lives in package pipeline; the connection
// settings are shared with backtest's topic replay (Connection).
//
// # Delivery
//
// State is exactly once: after a crash the task resumes from the offset
// committed with the state, and replays what followed. Outputs are at
// least once: they are written before the commit, so a crash in between
// sends them again. kafka-go has no producer transactions, so there is no
// exactly-once output; a forecast is identified by (series, origin) for
// consumers to deduplicate.
//
// A partition moves between instances through the changelog, which only
// its owner writes: a task confirms with the group coordinator that its
// generation still owns the partition before and after writing a commit
// (task.commit), stamps its records with its generation and fences the
// changelog when it takes a partition over, so restores ignore an older
// owner that resumes after a pause (see changelog). A restore applies
// whole commits only.
//
// # Concurrency
//
// Each task goroutine owns its partition's engine and buffers, so the
// record path takes no locks. An explanation request (explain.go) borrows
// a task's engine only while the task waits for records, through the
// partition's gate, which the task takes back once per batch. The
// Processor's methods are safe for
// concurrent use. Run owns every goroutine it starts and returns after
// they exit.
package stream
