package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkaconn"
	"github.com/trendstream/trendstream/pipeline"
)

// Connection says how to reach the Kafka brokers: their addresses and,
// optionally, TLS and SASL.
type Connection = kafkaconn.Connection

// SecurityConfig describes TLS and SASL settings as files and names, the
// way operators configure them; Build turns them into a Connection's.
type SecurityConfig = kafkaconn.SecurityConfig

// StartOffset says where a partition with no local state starts reading.
type StartOffset string

// Start offsets.
const (
	// StartEarliest replays the partition from its first retained record,
	// rebuilding the state from history.
	StartEarliest StartOffset = "earliest"
	// StartLatest skips history and starts with an empty state.
	StartLatest StartOffset = "latest"
)

// Config configures a Processor. DefaultConfig is the one source of its
// defaults: start from it, set Brokers and change what differs.
type Config struct {
	// Connection says how to reach the brokers. Brokers is required.
	Connection
	// Config configures every partition's engine: windowing,
	// forecasting, event limits, deduplication and the series cap.
	pipeline.Config
	// Group is the consumer group id.
	Group string
	// InputTopic holds sales events.
	InputTopic string
	// OutputTopic receives forecasts.
	OutputTopic string
	// DLQTopic receives rejected records.
	DLQTopic string
	// TrendsTopic receives, when decisions are on (Config.Decisions), one
	// record per store and close with each class's top series of a
	// partition, keyed by store (schema/trends.schema.json). Created, if
	// missing, with as many partitions as the input and the default
	// cleanup policy (delete): it is a history of rankings.
	TrendsTopic string
	// ReplenishmentTopic receives, when decisions are on, every series'
	// replenishment plan at each close, keyed by series id
	// (schema/replenishment.schema.json). Created compacted if missing:
	// the latest plan per series is what a consumer needs.
	ReplenishmentTopic string
	// CatalogTopic and InventoryTopic, when decisions are on and they are
	// not empty, are compacted topics keyed by series id holding per-series
	// policy overrides (schema/catalog.schema.json) and stock positions
	// (schema/inventory.schema.json). Every instance reads both whole
	// before it joins the group and follows them after; bad records go to
	// the dead-letter topic. Created compacted if missing.
	CatalogTopic, InventoryTopic string
	// PlansTopic, when promotions are on (Config.Promotions) and it is not
	// empty, is a compacted topic keyed by series id holding each series'
	// planned promotions (schema/plans.schema.json), which the forecasts
	// published for it apply. Every instance reads it whole before it
	// joins the group and follows it after; bad records go to the
	// dead-letter topic. Created compacted if missing.
	PlansTopic string
	// DLQMaxBytes is the most bytes of a rejected record's key, and of its
	// value, that its dead letter carries: a longer key or value is cut to
	// its first DLQMaxBytes bytes, and the dead letter's headers give the
	// original's size and SHA-256 digest (see schema/dead-letter.schema.json),
	// so that the dead-letter topic accepts it. At most 256 KiB, which keeps
	// a dead letter well below Kafka's default message.max.bytes of 1 MiB.
	DLQMaxBytes int
	// NoCreateTopics disables creating missing topics at start-up. By
	// default the input topic is created with Partitions partitions and the
	// output and dead-letter topics with as many as the input has.
	NoCreateTopics bool
	// NoChangelog disables the changelog: a partition's state then stays
	// in the local store only, and a partition moved to an instance
	// without it is rebuilt from the input topic (see StartOffset).
	NoChangelog bool
	// ChangelogTopic is the compacted topic mirroring every partition's
	// state, co-partitioned with the input. Empty means the group id
	// followed by ".changelog".
	ChangelogTopic string
	// Mix makes the partitions' learners mix their weights through the
	// compacted topic named by the group id followed by ".models" (see
	// pipeline.MixConfig); an Every of 0 turns it off.
	Mix pipeline.MixConfig
	// Standby keeps every input partition this instance is not assigned
	// warm in the local store by following the changelog, so a partition
	// moving here restores only the latest records. It costs each
	// instance the disk of the whole state and a read of every changelog
	// partition per StandbyInterval. It needs the changelog.
	Standby bool
	// StandbyInterval is how often standby partitions catch up.
	StandbyInterval time.Duration
	// Partitions is the partition count of an input topic created at
	// start-up.
	Partitions int
	// ReplicationFactor is the replication factor of created topics. Zero
	// leaves it to the brokers (their default.replication.factor; Kafka
	// 2.4 or later).
	ReplicationFactor int
	// Compression compresses the record batches written to the output
	// (forecasts and dead letters) and changelog topics: forecasts of one
	// close share most of their bytes. Consumers decompress any codec
	// transparently.
	Compression Compression

	// StartOffset applies to partitions without local state.
	StartOffset StartOffset
	// BatchSize caps the records processed per commit: larger batches
	// write each busy series' state less often.
	BatchSize int
	// BatchWait is how long a batch waits for more records once it has
	// one.
	BatchWait time.Duration
	// FetchMaxBytes is the largest fetch response requested per partition.
	FetchMaxBytes int
	// FetchMaxWait is how long a fetch waits for data on the broker.
	FetchMaxWait time.Duration
	// ShutdownGrace bounds the time a stopping partition spends writing
	// its last outputs and committing.
	ShutdownGrace time.Duration
	// SessionTimeout is the consumer group session timeout.
	SessionTimeout time.Duration
	// IdleTimeout is how long a partition may go without input before its
	// watermark follows the wall clock (pipeline.Config.Clock) minus the
	// allowed lateness, so that its buckets close although no event moves
	// it, as Flink's withIdleness does. A partition is idle only when it
	// has no unread records and its newest event was at most the lateness
	// plus IdleTimeout behind the clock when it arrived: a replay of
	// history is not idle. The watermark never moves back, and only when
	// that closes a bucket, whose forecasts are published and committed
	// like a batch's. Zero disables it.
	IdleTimeout time.Duration

	// Logger receives the processor's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Nil registers them
	// nowhere.
	Registerer prometheus.Registerer
}

// Compression names a codec of Kafka record batches.
type Compression string

// Codecs.
const (
	CompressionNone   Compression = "none"
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLz4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// codec returns kafka-go's codec of c, 0 for none, and whether c is
// known.
func (c Compression) codec() (kafka.Compression, bool) {
	switch c {
	case CompressionNone:
		return 0, true
	case CompressionGzip:
		return kafka.Gzip, true
	case CompressionSnappy:
		return kafka.Snappy, true
	case CompressionLz4:
		return kafka.Lz4, true
	case CompressionZstd:
		return kafka.Zstd, true
	}
	return 0, false
}

// DefaultConfig returns the processor's defaults: pipeline.DefaultConfig
// for the engines; group "trendstream" reading "sales", publishing to
// "forecasts" with dead letters of at most 64 KiB of key and of value to
// "sales.dlq" and a changelog; topics of 8 partitions created if missing
// with the brokers' replication factor, written lz4-compressed; new
// partitions read from the
// earliest offset; batches of up to 50,000 records, waiting up to 100ms;
// fetches of up to 8 MiB waiting up to 500ms; a 10s shutdown grace and
// session timeout; standbys catching up every 5s when enabled; a
// partition's watermark following the clock after 10 minutes without
// input.
func DefaultConfig() Config {
	c := Config{
		Config:          pipeline.DefaultConfig(),
		Mix:             pipeline.DefaultMixConfig(),
		Group:           "trendstream",
		InputTopic:      "sales",
		OutputTopic:     "forecasts",
		DLQTopic:        "sales.dlq",
		DLQMaxBytes:     64 << 10,
		StandbyInterval: 5 * time.Second,
		Partitions:      8,
		Compression:     CompressionLz4,
		StartOffset:     StartEarliest,
		BatchSize:       50000,
		BatchWait:       100 * time.Millisecond,
		FetchMaxBytes:   8 << 20,
		FetchMaxWait:    500 * time.Millisecond,
		ShutdownGrace:   10 * time.Second,
		SessionTimeout:  10 * time.Second,
		IdleTimeout:     10 * time.Minute,
	}
	// The decision topics, used when decisions are on.
	c.TrendsTopic, c.ReplenishmentTopic = "trends", "replenishment"
	c.CatalogTopic, c.InventoryTopic = "catalog", "inventory"
	// The plans topic, used when promotions are on.
	c.PlansTopic = "plans"
	return c
}

// maxDLQBytes bounds DLQMaxBytes: a dead letter's key and value at their
// longest, with its headers, stay below the largest batch the writer sends
// (see kafkaconn.Connection.Writer).
const maxDLQBytes = 256 << 10

func known(c Compression) bool {
	_, ok := c.codec()
	return ok
}

// changelogTopic returns the changelog's topic name.
func (c *Config) changelogTopic() string {
	if c.ChangelogTopic != "" {
		return c.ChangelogTopic
	}
	return c.Group + ".changelog"
}

// validateDecisions checks the decision topics when decisions are on:
// the outputs must be set and every topic must differ from the others.
func (c *Config) validateDecisions() error {
	if !c.Decisions.On {
		return nil
	}
	if c.TrendsTopic == "" || c.ReplenishmentTopic == "" {
		return fmt.Errorf("stream: TrendsTopic %q and ReplenishmentTopic %q must be set when decisions are on", c.TrendsTopic, c.ReplenishmentTopic)
	}
	seen := map[string]bool{}
	for _, t := range []string{c.InputTopic, c.OutputTopic, c.DLQTopic, c.TrendsTopic, c.ReplenishmentTopic, c.CatalogTopic, c.InventoryTopic} {
		if t != "" && seen[t] {
			return fmt.Errorf("stream: topic %q is used twice: the input, output, dead-letter, trends, replenishment, catalog and inventory topics must differ", t)
		}
		seen[t] = true
	}
	return nil
}

// validate checks the configuration, returning an error that names the
// first invalid field and its value.
func (c *Config) validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("stream: Brokers is required")
	case c.Group == "" || c.InputTopic == "" || c.OutputTopic == "" || c.DLQTopic == "":
		return fmt.Errorf("stream: Group %q, InputTopic %q, OutputTopic %q and DLQTopic %q must be set", c.Group, c.InputTopic, c.OutputTopic, c.DLQTopic)
	case c.InputTopic == c.OutputTopic || c.InputTopic == c.DLQTopic || c.OutputTopic == c.DLQTopic:
		return fmt.Errorf("stream: input %q, output %q and dead-letter %q topics must differ", c.InputTopic, c.OutputTopic, c.DLQTopic)
	case c.DLQMaxBytes < 0 || c.DLQMaxBytes > maxDLQBytes:
		return fmt.Errorf("stream: DLQMaxBytes %d is outside [0, %d]", c.DLQMaxBytes, maxDLQBytes)
	case c.Partitions < 1:
		return fmt.Errorf("stream: Partitions %d is below 1", c.Partitions)
	case c.ReplicationFactor < 0:
		return fmt.Errorf("stream: ReplicationFactor %d is negative", c.ReplicationFactor)
	case !known(c.Compression):
		return fmt.Errorf("stream: Compression %q is not none, gzip, snappy, lz4 or zstd", c.Compression)
	case c.StartOffset != StartEarliest && c.StartOffset != StartLatest:
		return fmt.Errorf("stream: StartOffset %q is not %q or %q", c.StartOffset, StartEarliest, StartLatest)
	case c.Standby && c.NoChangelog:
		return errors.New("stream: Standby needs the changelog")
	case c.Standby && c.StandbyInterval <= 0:
		return fmt.Errorf("stream: StandbyInterval %v is not positive", c.StandbyInterval)
	case c.BatchSize < 1:
		return fmt.Errorf("stream: BatchSize %d is below 1", c.BatchSize)
	case c.FetchMaxBytes < 1:
		return fmt.Errorf("stream: FetchMaxBytes %d is below 1", c.FetchMaxBytes)
	case c.BatchWait < 0:
		return fmt.Errorf("stream: BatchWait %v is negative", c.BatchWait)
	case c.IdleTimeout < 0:
		return fmt.Errorf("stream: IdleTimeout %v is negative", c.IdleTimeout)
	case c.FetchMaxWait <= 0 || c.ShutdownGrace <= 0 || c.SessionTimeout <= 0:
		return fmt.Errorf("stream: FetchMaxWait %v, ShutdownGrace %v and SessionTimeout %v must be positive",
			c.FetchMaxWait, c.ShutdownGrace, c.SessionTimeout)
	}
	if err := c.validateDecisions(); err != nil {
		return err
	}
	if err := c.validatePlans(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := c.Mix.Validate(); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	return c.Config.Validate()
}
