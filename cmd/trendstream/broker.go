package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"
)

func brokerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a development Kafka-protocol broker that keeps data in memory only",
		Long: `broker runs franz-go's kfake, a Kafka-protocol broker in this process, so
trendstream, kcat and any Kafka client can be tried without a Kafka cluster.
Topics are created on first use with --partitions partitions.

It keeps everything in memory: all topics, offsets and groups are lost when
it stops. It is a development tool; run Apache Kafka or Redpanda in
production. After restarting it, delete trendstream's --state-dir, whose
offsets refer to the lost topics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, log, err := setup(cmd)
			if err != nil {
				return err
			}
			c, err := startBroker(v.GetString("listen"), v.GetInt("partitions"), log)
			if err != nil {
				return err
			}
			log.Info("development broker listening; data is kept in memory only",
				"addr", c.ListenAddrs()[0], "partitions", v.GetInt("partitions"))
			<-cmd.Context().Done()
			log.Info("broker stopping")
			c.Close()
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("listen", "127.0.0.1:9092", "address the broker listens on and advertises")
	fs.Int("partitions", 8, "partitions of automatically created topics")
	return cmd
}

// startBroker starts an in-memory Kafka-protocol broker on addr.
func startBroker(addr string, partitions int, log *slog.Logger) (*kfake.Cluster, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("--partitions %d is below 1", partitions)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
		kfake.WithLogger(kfakeLogger{log}),
	)
	if err != nil {
		return nil, fmt.Errorf("starting broker on %s: %w", addr, err)
	}
	return c, nil
}

// kfakeLogger routes kfake's logs to slog, all at debug level: kfake logs
// every request at info.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	lv := slog.LevelDebug
	if level == kfake.LogLevelError {
		lv = slog.LevelWarn
	}
	if k.l.Enabled(context.Background(), lv) {
		k.l.Log(context.Background(), lv, fmt.Sprintf(msg, args...), "component", "broker")
	}
}
