// Package faultproxy is a test-only TCP proxy between Kafka clients and
// brokers that injects network and broker faults.
//
// # Overview
//
// New starts one listener per broker. Clients bootstrap from Addrs; the
// proxy rewrites Metadata and FindCoordinator responses so that every
// later connection (partition leaders, the group coordinator) goes through
// it too. Each client connection gets its own broker connection, and the
// proxy reads the Kafka wire protocol's length-prefixed frames on both, so
// that it can act on whole requests:
//
//   - Freeze stops forwarding in both directions, with connections left
//     open, as a network partition that drops packets does; Thaw resumes.
//   - SetDelay holds every request back for a while before forwarding it.
//   - Reset closes every open connection, as a broker restart or a
//     stateful firewall does.
//   - FailProduce makes the next produce request to a topic fail: Refuse
//     answers it with a retriable broker error and does not forward it,
//     Lose swallows it and cuts the connection without a reply, Cut
//     forwards it, drops the reply and cuts the connection (the write
//     happened, the client does not know it).
//   - CapMessageSize answers produce requests holding a record for a topic
//     larger than a limit with MESSAGE_TOO_LARGE, as a broker does whose
//     max.message.bytes for the topic is that limit.
//
// The proxy caps the Produce API at version 12 in ApiVersions answers:
// version 13 names topics by id only, and the proxy matches produce
// faults by topic name.
//
// # Concurrency
//
// Every method is safe for concurrent use. The proxy owns one goroutine
// per listener and two per proxied connection; Close stops them all and
// waits for them.
package faultproxy
