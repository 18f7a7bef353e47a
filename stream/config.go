package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trendstream/trendstream/window"
)

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

// Config configures a Processor. The zero value of each field but Brokers
// means its default.
type Config struct {
	// Connection says how to reach the brokers. Brokers is required.
	Connection
	// Group is the consumer group id. The default is "trendstream".
	Group string
	// InputTopic holds sales events. The default is "sales".
	InputTopic string
	// OutputTopic receives forecasts. The default is "forecasts".
	OutputTopic string
	// DLQTopic receives rejected records. The default is "sales.dlq".
	DLQTopic string
	// NoCreateTopics disables creating missing topics at start-up. By
	// default the input topic is created with Partitions partitions and the
	// output and dead-letter topics with as many as the input has.
	NoCreateTopics bool
	// NoChangelog disables the changelog: a partition's state then stays
	// in the local store only, and a partition moved to an instance
	// without it is rebuilt from the input topic (see StartOffset).
	NoChangelog bool
	// ChangelogTopic is the compacted topic mirroring every partition's
	// state, co-partitioned with the input. The default is the group id
	// followed by ".changelog".
	ChangelogTopic string
	// Standby keeps every input partition this instance is not assigned
	// warm in the local store by following the changelog, so a partition
	// moving here restores only the latest records. It costs each
	// instance the disk of the whole state and a read of every changelog
	// partition per StandbyInterval. It needs the changelog.
	Standby bool
	// StandbyInterval is how often standby partitions catch up. The
	// default is 5s.
	StandbyInterval time.Duration
	// Partitions is the partition count of an input topic created at
	// start-up. The default is 8.
	Partitions int
	// ReplicationFactor of created topics. The default is 1.
	ReplicationFactor int

	// Window configures bucketing and features. Width defaults to daily
	// and Lateness to one hour; History to what the forecasters need.
	Window window.Config
	// Forecasting configures the forecasters and which one is published.
	Forecasting
	// FlatPct is the trend summary's band, in percent, within which a
	// change counts as flat. The default is 5.
	FlatPct float64

	// Limits bound accepted events.
	Limits Limits
	// LatePolicy is what happens to late events. The default is
	// LateDeadLetter.
	LatePolicy LatePolicy
	// MaxSeries caps the series each partition keeps in memory. Beyond
	// it the least recently updated hundredth is evicted: their state
	// stays in the store and comes back with their next event, catching
	// up on the buckets they missed as zeros. Evicted series are not
	// forecast while evicted. The default is 100,000; -1 disables the cap.
	MaxSeries int
	// DedupHorizon is how long, in event time, an event id is remembered.
	// The default is 48 hours.
	DedupHorizon time.Duration

	// StartOffset applies to partitions without local state. The default
	// is StartEarliest.
	StartOffset StartOffset
	// BatchSize caps the records processed per commit. The default is
	// 50,000: larger batches write each busy series' state less often.
	BatchSize int
	// BatchWait is how long a batch waits for more records once it has
	// one. The default is 100ms.
	BatchWait time.Duration
	// FetchMaxBytes is the largest fetch response requested per partition.
	// The default is 8 MiB.
	FetchMaxBytes int
	// FetchMaxWait is how long a fetch waits for data on the broker. The
	// default is 500ms.
	FetchMaxWait time.Duration
	// CommitInterval is how often consumer-group offsets are committed,
	// for lag monitoring only: the offsets in Badger are the truth. The
	// default is 5s.
	CommitInterval time.Duration
	// ShutdownGrace bounds the time a stopping partition spends writing
	// its last outputs and committing. The default is 10s.
	ShutdownGrace time.Duration
	// SessionTimeout is the consumer group session timeout. The default
	// is 10s.
	SessionTimeout time.Duration

	// Logger receives the processor's logs. The default discards them.
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. The default registers
	// them nowhere.
	Registerer prometheus.Registerer
	// Clock returns the wall-clock time, for tests. The default is
	// time.Now.
	Clock func() time.Time
}

// setPipelineDefaults fills in the windowing and forecasting defaults that
// run and backtests share: daily buckets, an hour of lateness, and the
// history the forecasters need.
func setPipelineDefaults(w *window.Config, f *Forecasting) error {
	if w.Width == 0 {
		w.Width = window.Day
	}
	if w.Lateness == 0 {
		w.Lateness = time.Hour
	}
	if err := f.setDefaults(); err != nil {
		return err
	}
	if w.History == 0 {
		w.History = f.history()
	}
	return nil
}

func (c *Config) setDefaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("stream: Brokers is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Group, "trendstream")
	def(&c.InputTopic, "sales")
	def(&c.OutputTopic, "forecasts")
	def(&c.DLQTopic, "sales.dlq")
	def(&c.ChangelogTopic, c.Group+".changelog")
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if err := setPipelineDefaults(&c.Window, &c.Forecasting); err != nil {
		return err
	}
	if need := c.Forecasting.history(); c.Window.History < need {
		return fmt.Errorf("stream: Window.History %d is below the %d buckets the forecasters need", c.Window.History, need)
	}
	if c.FlatPct == 0 {
		c.FlatPct = 5
	}
	if c.LatePolicy == "" {
		c.LatePolicy = LateDeadLetter
	}
	if c.DedupHorizon == 0 {
		c.DedupHorizon = 48 * time.Hour
	}
	if c.StandbyInterval == 0 {
		c.StandbyInterval = 5 * time.Second
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = 100000
	}
	if c.StartOffset == "" {
		c.StartOffset = StartEarliest
	}
	if c.BatchSize == 0 {
		c.BatchSize = 50000
	}
	if c.BatchWait == 0 {
		c.BatchWait = 100 * time.Millisecond
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = 8 << 20
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 500 * time.Millisecond
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 5 * time.Second
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	switch {
	case c.InputTopic == c.OutputTopic || c.InputTopic == c.DLQTopic || c.OutputTopic == c.DLQTopic:
		return fmt.Errorf("stream: input %q, output %q and dead-letter %q topics must differ", c.InputTopic, c.OutputTopic, c.DLQTopic)
	case c.Partitions < 1:
		return fmt.Errorf("stream: Partitions %d is below 1", c.Partitions)
	case c.LatePolicy != LateDeadLetter && c.LatePolicy != LateDrop:
		return fmt.Errorf("stream: LatePolicy %q is not %q or %q", c.LatePolicy, LateDeadLetter, LateDrop)
	case c.StartOffset != StartEarliest && c.StartOffset != StartLatest:
		return fmt.Errorf("stream: StartOffset %q is not %q or %q", c.StartOffset, StartEarliest, StartLatest)
	case c.Standby && c.NoChangelog:
		return errors.New("stream: Standby needs the changelog")
	case c.StandbyInterval < 0:
		return fmt.Errorf("stream: StandbyInterval %v is negative", c.StandbyInterval)
	case c.MaxSeries < -1:
		return fmt.Errorf("stream: MaxSeries %d is below -1", c.MaxSeries)
	case c.DedupHorizon < 0:
		return fmt.Errorf("stream: DedupHorizon %v is negative", c.DedupHorizon)
	case c.BatchSize < 1:
		return fmt.Errorf("stream: BatchSize %d is below 1", c.BatchSize)
	case c.BatchWait < 0 || c.FetchMaxWait <= 0 || c.CommitInterval <= 0 || c.ShutdownGrace <= 0 || c.SessionTimeout <= 0:
		return errors.New("stream: BatchWait, FetchMaxWait, CommitInterval, ShutdownGrace and SessionTimeout must be positive")
	case c.FlatPct < 0:
		return fmt.Errorf("stream: FlatPct %v is negative", c.FlatPct)
	}
	if err := c.Limits.setDefaults(); err != nil {
		return err
	}
	_, err := window.NewPartition(c.Window)
	return err
}

// engineConfig derives a partition engine's configuration.
func (c *Config) engineConfig() engineConfig {
	return engineConfig{
		window:    c.Window,
		limits:    c.Limits,
		late:      c.LatePolicy,
		dedup:     c.DedupHorizon,
		forecast:  &c.Forecasting,
		clock:     c.Clock,
		maxSeries: max(c.MaxSeries, 0),
	}
}
