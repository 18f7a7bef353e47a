// Package pipeline is trendstream's pure partition core: everything a
// partition does with its records that is neither Kafka nor Badger.
//
// # Overview
//
// An Engine owns one partition. Drivers feed it records (Process): the
// live Kafka task in package stream and the backtests in package backtest
// drive the same engine, so a backtest measures what production does. For
// each record the engine decodes and validates the sales event (decode.go,
// with its own allocation-free JSON tokenizer and RFC 3339 parser),
// drops copies of event ids it has seen (dedup.go), counts the sale in its
// series' event-time bucket (package window) and, at every bucket close,
// runs the forecaster roster (roster.go): learners train on the closing
// series, every forecaster forecasts them, and the published forecast is
// chosen per series, by the auto ensemble when it runs. With a Mixer
// (Engine.SetMixer, mix.go) the learners of all partitions learn together:
// every MixConfig.Every buckets a partition publishes its learners'
// snapshots and mixes in the other partitions' latest, and commits the
// round with the mixed weights. The engine hands
// dead letters and closes to its Sink; Encoder turns a close into the
// compact form a series' latest forecast is stored in and the forecast
// topic's JSON record, which Renderer rebuilds from the compact form byte
// for byte.
//
// The engine's state reaches a store only through the small interfaces
// declared here: Writes collects a commit (*state.Batch implements it) and
// Store reads one back (*state.DB). Every key layout lives in keys.go,
// with the commit point that makes a commit atomic; drivers use the
// exported helpers (CommitPointKey, ApplyRestored, ReadSeries, ...) rather
// than laying out keys themselves. DefaultConfig is the one source of the
// defaults of run and backtests.
//
// The package never imports kafka-go (a test enforces it) and starts no
// goroutines.
//
// # Concurrency
//
// An Engine, its Decoder and Encoder belong to one goroutine: the record
// path takes no locks. Different engines share nothing. An explanation
// is prepared on that goroutine (Engine.PrepareExplanation) and
// integrated on any other (Explaining.Explain), sharing nothing with the
// engine.
//
// # Invariants
//
// Every prefix of the ordinary writes of a commit written by AppendState
// leaves each series decodable, as its previous or its new state: a
// series' new buckets are written before its state and the buckets that
// left its history are deleted after it, and a retired series' state is
// deleted before its buckets. So a crash inside a commit that a store
// splits over several transactions never leaves a series that fails to
// load. The commit point (next offset, window state, dedup records) is
// always written last and atomically, and stays small: it deletes at most
// dedupDeletes expired dedup records. A record whose series state already
// holds it (Series.Seq) is never counted twice, and an event in a bucket
// its series has closed is late even when the partition's watermark lags
// the series. Event ids are forgotten by event time only, or early when a
// partition holds more than DedupMaxIDs.
package pipeline
