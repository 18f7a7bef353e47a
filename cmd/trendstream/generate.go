package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/stream"
)

func generateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Produce a synthetic, deterministic stream of retail sales",
		Long: `generate simulates stores x SKUs: fast, medium and slow (intermittent) items
with weekly seasonality, trends, price changes, promotions that lift sales,
launches and discontinuations. It first sends --backfill of history as fast
as possible, then runs at --speed (event time per wall-clock time), ahead of
the clock when speed > 1: run the processor with --max-future -1s to accept
that, and with --max-past -1s if the backfill reaches further back than
--max-past (30 days) or the topic is replayed later. The --out-of-order, --late, --duplicate and --malformed shares alter
records to exercise lateness, the dead-letter topic and deduplication.`,
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
			gen, paceFrom, err := newGenerator(v)
			if err != nil {
				return err
			}
			log.Info("generating", "topic", v.GetString("topic"), "series", v.GetInt("stores")*v.GetInt("skus"),
				"backfill_from", paceFrom.Add(-v.GetDuration("backfill")), "live_from", paceFrom, "speed", v.GetFloat64("speed"))
			sent, err := stream.Produce(cmd.Context(), stream.ProduceConfig{
				Connection: conn,
				Topic:      v.GetString("topic"),
				Partitions: v.GetInt("partitions"),
				Speed:      v.GetFloat64("speed"),
				PaceFrom:   paceFrom,
				Logger:     log,
			}, gen)
			log.Info("generated", "events", sent)
			return err
		},
	}
	fs := cmd.Flags()
	addKafkaFlags(fs)
	fs.String("topic", "sales", "topic to write to")
	fs.Int("partitions", 8, "partitions of the topic if generate creates it")
	addGeneratorFlags(fs, generatorDefaults{skus: 20})
	return cmd
}

// generatorDefaults are the defaults that differ between generate and demo.
type generatorDefaults struct {
	skus                                   int
	outOfOrder, late, duplicate, malformed float64
}

// addGeneratorFlags adds the synthetic generator's flags, shared with demo.
func addGeneratorFlags(fs *pflag.FlagSet, d generatorDefaults) {
	fs.Int("stores", 3, "simulated stores")
	fs.Int("skus", d.skus, "simulated SKUs per store")
	fs.Uint64("seed", 1, "random seed; a seed always gives the same stream")
	fs.Duration("backfill", 28*24*time.Hour, "history sent at once before live generation starts")
	fs.Float64("speed", 3600, "event time per wall-clock time once live (3600: an hour per second)")
	fs.Int("days", 0, "simulated days to generate, backfill included; 0 runs until stopped")
	fs.Float64("out-of-order", d.outOfOrder, "share of events moved back within the lateness")
	fs.Float64("late", d.late, "share of events moved two days back, to be dead-lettered as late")
	fs.Float64("duplicate", d.duplicate, "share of events sent twice")
	fs.Float64("malformed", d.malformed, "share of extra records that are not valid JSON")
}

// newGenerator builds the generator from its flags. Live generation starts
// at today's UTC midnight, after --backfill of history.
func newGenerator(v *viper.Viper) (*source.Synthetic, time.Time, error) {
	backfill := v.GetDuration("backfill")
	if backfill < 0 {
		return nil, time.Time{}, fmt.Errorf("--backfill %v is negative", backfill)
	}
	live := time.Now().UTC().Truncate(24 * time.Hour)
	// Out-of-order events stay within the processor's lateness: demo has
	// the flag; generate assumes the default hour unless TRENDSTREAM_LATENESS
	// or the config file says otherwise.
	lateness := v.GetDuration("lateness")
	if lateness <= 0 {
		lateness = time.Hour
	}
	gen, err := source.NewSynthetic(source.SynthConfig{
		Stores:     v.GetInt("stores"),
		SKUs:       v.GetInt("skus"),
		Seed:       v.GetUint64("seed"),
		Start:      live.Add(-backfill),
		Days:       v.GetInt("days"),
		OutOfOrder: v.GetFloat64("out-of-order"),
		Late:       v.GetFloat64("late"),
		Duplicate:  v.GetFloat64("duplicate"),
		Malformed:  v.GetFloat64("malformed"),
		Lateness:   lateness,
	})
	return gen, live, err
}
