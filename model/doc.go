// Package model holds the forecasters: the Forecaster and Learner
// interfaces, the classical baselines and the global LSTM.
//
// # Overview
//
// A forecaster reads a series' history as plain values (Input: recent
// closed-bucket quantities with prices, promotions and the bucket index of
// the first) and writes a multi-step Forecast: for each of Horizon steps a
// mean and one value per quantile level, never negative, quantiles never
// crossing. The classical forecasters (naive, seasonal naive, 28-bucket
// mean, exponential smoothing, TSB for intermittent demand) forecast one
// series at a time from its history alone. Global models implement
// BatchForecaster and Learner: they forecast all series of a partition at
// once and learn online at every bucket close.
//
// The package is pure computation: no Kafka, no Badger, no goroutines of
// its own. Models that keep state marshal it to versioned bytes.
//
// # Concurrency
//
// Forecasters keep scratch buffers and are not safe for concurrent use:
// each partition's goroutine owns its own.
//
// # Invariants
//
// Every Forecast written by a forecaster passes (*Forecast).Check.
package model
