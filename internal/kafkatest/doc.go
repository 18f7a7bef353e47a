// Package kafkatest holds helpers for tests that talk to a Kafka-protocol
// broker such as the in-process kfake one.
package kafkatest
