package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/stream"
)

func produceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Load sales events from a file or an M5 dataset into a topic",
		Long: `produce writes sales events to a topic, keyed STORE/SKU and partitioned with
murmur2 like Java clients, as fast as possible or at a replay speed.

--events takes a CSV file (header with event_id, store, sku, ts, qty and
optionally price, promo) or JSON lines (one event per line, sent as is).
--m5 takes an M5-format directory: every day with sales becomes one event at
12:00 UTC, day by day.

--speed is event time per wall-clock time: 86400 replays a day per second;
0 sends as fast as possible.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, log, err := setup(cmd)
			if err != nil {
				return err
			}
			conn, err := connection(v)
			if err != nil {
				return err
			}
			src, total, closeSrc, err := openSource(v.GetString("events"), v.GetString("m5"))
			if err != nil {
				return err
			}
			defer closeSrc()
			bar := newProgress(log, "producing", "events", total, v.GetBool("quiet"))
			sent, err := stream.Produce(cmd.Context(), stream.ProduceConfig{
				Connection: conn,
				Topic:      v.GetString("topic"),
				Partitions: v.GetInt("partitions"),
				Speed:      v.GetFloat64("speed"),
				Logger:     log,
				Progress: func(n int64, due time.Time) {
					bar.set(n, "event_time", due.Format(time.RFC3339))
				},
			}, src)
			bar.finish(sent)
			log.Info("produced", "events", sent, "topic", v.GetString("topic"))
			return err
		},
	}
	fs := cmd.Flags()
	addKafkaFlags(fs)
	fs.String("topic", "sales", "topic to write to")
	fs.Int("partitions", 8, "partitions of the topic if produce creates it")
	fs.String("events", "", "CSV or JSON-lines file of sales events")
	fs.String("m5", "", "M5-format directory (sales_train.csv, optional sales_test.csv and calendar.csv)")
	fs.Float64("speed", 0, "replay speed in event time per wall time; 0 is as fast as possible")
	fs.Bool("quiet", false, "no progress output")
	return cmd
}

// openSource opens --events or --m5, returning the source, its record
// count when known (-1 otherwise) and a close function.
func openSource(events, m5 string) (source.Source, int64, func(), error) {
	switch {
	case events != "" && m5 != "":
		return nil, 0, nil, errors.New("give one of --events and --m5")
	case events != "":
		f, err := source.OpenFile(events)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("--events: %w", err)
		}
		return f, -1, func() { f.Close() }, nil
	case m5 != "":
		m, err := source.ReadM5(m5)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("--m5: %w", err)
		}
		var n int64
		for _, row := range m.Sales {
			for _, q := range row {
				if q > 0 {
					n++
				}
			}
		}
		return m.Events(), n, func() {}, nil
	}
	return nil, 0, nil, errors.New("give --events FILE or --m5 DIR")
}
