// Package source reads sales events from files (CSV, JSON lines and the M5
// competition format) and generates synthetic ones, as records ready for
// the input topic: key "STORE/SKU" and the JSON value of
// schema/sales-event.schema.json.
//
// # Overview
//
// A Source yields records in the order they should be produced, which for
// files and M5 data is event-time order. Sources are pure: they do no
// Kafka I/O, so produce, generate, demo and backtest share them.
//
// # Concurrency
//
// A Source belongs to one goroutine.
package source
