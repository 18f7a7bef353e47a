// Package backtest replays sales history through the same partition core
// as trendstream run (package pipeline) and scores every forecaster as
// the backtest protocol (PROTOCOL.md) defines: at a fixed origin on the
// buckets after it, and over rolling origins before it.
//
// # Overview
//
// Run splits a file source into partitions with the topic partitioner
// (Partition), so each partition's models see what they would see live;
// RunTopic replays a Kafka topic's partitions (its only Kafka code, with
// plain partition readers and no consumer group). Either way each
// partition gets its own pipeline.Engine on its own goroutine, whose sink
// feeds a model.Evaluator; the evaluations are merged at the end. When
// the learners mix across partitions (Config.Mix), the partitions meet at
// every mixing round in lock step (mix.go), each mixing in the snapshots a
// live group whose partitions keep pace would; otherwise they share
// nothing. Results are deterministic for a configuration and seed,
// whatever the number of goroutines and their pace.
//
// # Concurrency
//
// Run and RunTopic may be called concurrently; each call owns the
// goroutines it starts and returns after they exit.
package backtest
