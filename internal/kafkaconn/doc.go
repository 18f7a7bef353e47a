// Package kafkaconn holds what trendstream's Kafka drivers (stream's
// processor and tools, backtest's topic replay) share about reaching the
// brokers: addresses, TLS and SASL, and the kafka-go dialers, transports,
// writers and readers built from them. package stream re-exports its types.
package kafkaconn
