package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/stream"
)

func tailCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow a topic of forecasts (or dead letters) and print its records",
		Long: `tail reads every partition of a topic and prints each record as it arrives:
forecasts as one readable line each (or raw JSON with --json), other
records, such as dead letters, with their headers. It commits nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := settings(cmd)
			if err != nil {
				return err
			}
			conn, err := connection(v)
			if err != nil {
				return err
			}
			series, raw := v.GetString("series"), v.GetBool("json")
			return stream.Follow(cmd.Context(), conn, v.GetString("topic"),
				v.GetBool("from-beginning"), func(m stream.Message) {
					if series != "" && string(m.Key) != series {
						return
					}
					printRecord(os.Stdout, m, raw)
				})
		},
	}
	fs := cmd.Flags()
	addKafkaFlags(fs)
	fs.String("topic", "forecasts", "topic to follow")
	fs.String("series", "", "only records keyed STORE/SKU")
	fs.Bool("json", false, "print record values as they are")
	fs.Bool("from-beginning", false, "start from the first retained record instead of the end")
	return cmd
}

// printRecord writes a record: a forecast as a readable line, anything else
// with its key and headers.
func printRecord(w io.Writer, m stream.Message, raw bool) {
	if raw {
		fmt.Fprintf(w, "%s\n", m.Value)
		return
	}
	var f pipeline.ForecastRecord
	if json.Unmarshal(m.Value, &f) == nil && len(f.Steps) > 0 {
		fmt.Fprintln(w, forecastLine(&f))
		return
	}
	var h []string
	for _, hd := range m.Headers {
		h = append(h, hd.Key+"="+string(hd.Value))
	}
	fmt.Fprintf(w, "%s [%s] %s\n", m.Key, strings.Join(h, " "), m.Value)
}

// forecastLine summarizes a forecast: the next seven buckets' mean per
// bucket with the average 10%-90% band, and the trend.
func forecastLine(f *pipeline.ForecastRecord) string {
	n := min(7, len(f.Steps))
	var mean, p10, p90 float64
	for _, s := range f.Steps[:n] {
		mean += s.Mean / float64(n)
		p10 += s.P10 / float64(n)
		p90 += s.P90 / float64(n)
	}
	return fmt.Sprintf("%-24s origin %s  next %d: %7.2f/%s [%.2f-%.2f]  %s  %s",
		f.Series, f.Origin.Format("2006-01-02 15:04"), n, mean, f.Bucket, p10, p90, trendText(f), f.Model)
}

func trendText(f *pipeline.ForecastRecord) string {
	arrow := map[string]string{"up": "↑", "down": "↓", "flat": "→"}[string(f.Trend.Direction)]
	if f.Trend.ChangePct == nil {
		return arrow + "    n/a"
	}
	return fmt.Sprintf("%s %+6.1f%%", arrow, *f.Trend.ChangePct)
}
