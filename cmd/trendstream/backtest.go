package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/backtest"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/stream"
	"github.com/trendstream/trendstream/window"
)

func backtestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay history through the pipeline and score the forecasts",
		Long: `backtest replays sales history through the same decoding, windowing and
forecasting code as run, and scores every model's forecasts as the backtest
protocol defines: at a fixed origin (--origin; for M5 data the last day of
sales_train.csv) on the buckets after it, and over the --rolling origins
before it on every step whose actual is known. Metrics: mae, rmse, bias,
rmsse, wrmsse, spl, wspl and coverage80 for every model and for
"published", the forecasts run would publish.

Sources: --m5 DIR (every day with sales becomes an event at 12:00 UTC),
--events FILE (CSV or JSON lines in the input schema), --synthetic (the
demo's generator, whose truth scores the trend classes), or --topic with
--brokers (the topic from its first record to its end, or the records with
Kafka timestamps from --from to before --to, read without a consumer group
or state directory, so live consumers are untouched). File
sources are split into --partitions partitions with the partitioner
produce uses, so each partition's models see what they would see live.

--report writes the JSON report; --plots writes PNG charts; --html writes
the report with its charts as one self-contained HTML page; --publish
writes the published forecasts to a topic.`,
		Args: cobra.NoArgs,
		RunE: runBacktest,
	}
	fs := cmd.Flags()
	fs.String("m5", "", "M5-format directory to replay")
	fs.String("events", "", "CSV or JSON-lines events file to replay")
	fs.Bool("synthetic", false, "replay the synthetic generator (--stores, --skus, --seed, --days) and score the trend classes against its truth")
	fs.Int("stores", 4, "with --synthetic: simulated stores")
	fs.Int("skus", 100, "with --synthetic: simulated SKUs per store")
	fs.Uint64("seed", 1, "with --synthetic: random seed")
	fs.Int("days", 300, "with --synthetic: simulated days")
	fs.String("topic", "", "topic to replay (with --brokers)")
	fs.String("from", "", "with --topic: replay the records with Kafka timestamps from this date or RFC 3339 time on")
	fs.String("to", "", "with --topic: replay the records with Kafka timestamps before this date or RFC 3339 time")
	addKafkaFlags(fs)
	def := backtest.DefaultConfig()
	fs.Int("partitions", def.Partitions, "partitions a file source is split into")
	fs.String("origin", "", "fixed origin date, YYYY-MM-DD or RFC 3339 (default: M5's last training day; for events, the last day minus the horizon)")
	fs.Int("rolling", def.Rolling, "origins of the rolling evaluation, ending at the fixed origin")
	fs.String("models", strings.Join(append(slices.Clone(model.Baselines), model.NameLSTM), ","), "comma-separated forecasters to evaluate besides the published one")
	fs.String("report", "", "write the JSON report to this file")
	fs.String("plots", "", "write PNG charts to this directory")
	fs.String("html", "", "write the report with its charts as one self-contained HTML page to this file")
	fs.String("publish", "", "write the published forecasts to this topic (with --brokers)")
	fs.Bool("quiet", false, "no progress output")
	fs.Bool("promo-known", false, "with --events or --synthetic: the input's promo column is known in advance; forecasts are published under the plan and the report scores promotion days apart")
	addProcessingFlags(fs, def.Config)
	addMixFlags(fs, def.Mix)
	return cmd
}

func runBacktest(cmd *cobra.Command, _ []string) error {
	started := time.Now()
	v, log, err := setup(cmd)
	if err != nil {
		return err
	}
	cfg, err := backtestConfig(v, log)
	if err != nil {
		return err
	}
	conn, err := connection(v)
	if err != nil {
		return err
	}
	if topic := v.GetString("publish"); topic != "" {
		if err := stream.EnsureTopics(cmd.Context(), conn, 8, 0, topic); err != nil {
			return err
		}
		w := conn.Writer(topic)
		defer w.Close()
		cfg.PublishTo = w
	}

	stages := map[string]float64{}
	loadStart := time.Now()
	in, err := openReplay(v, &cfg)
	if err != nil {
		return err
	}
	if in.close != nil {
		defer in.close()
	}
	if err := promoKnown(v, &cfg); err != nil {
		return err
	}
	stages["load_seconds"] = time.Since(loadStart).Seconds()

	bar := newProgress(log, "replaying", "events", in.total, v.GetBool("quiet"))
	cfg.Progress = func(n int64, t time.Time) { bar.set(n, "event_time", t.Format(time.DateOnly)) }
	var res *backtest.Result
	if in.topic != "" {
		res, err = backtest.RunTopic(cmd.Context(), cfg, &conn, in.topic, in.rng)
	} else {
		res, err = backtest.Run(cmd.Context(), cfg, in.src)
	}
	if err != nil {
		return err
	}
	bar.finish(res.Records)
	stages["replay_seconds"] = res.ReplaySeconds
	stages["evaluate_seconds"] = res.EvaluateSeconds

	rep := newReport(res, cfg, in.name)
	printSummary(os.Stdout, rep)
	if m := rep.Run.Mixing; m != nil {
		fmt.Printf("\nmixing every %d buckets: %.0f rounds per partition, %.0f bytes published and %.0f received per partition and round, %.2f ms per mix (%.2f ms waiting for peers)\n",
			m.Every, m.RoundsPerPartition, m.PublishedBytesPerRound, m.ReceivedBytesPerRound, m.MillisecondsPerRound, m.WaitMillisecondsPerRound)
	}
	outStart := time.Now()
	if dir := v.GetString("plots"); dir != "" {
		files, err := writePlots(dir, res, cfg)
		if err != nil {
			return err
		}
		log.Info("plots written", "dir", dir, "files", len(files))
	}
	stages["plots_seconds"] = time.Since(outStart).Seconds()
	rep.Run.Stages = stages
	rep.Run.WallSeconds = time.Since(started).Seconds()
	if path := v.GetString("html"); path != "" {
		if err := writeHTMLReport(path, rep, res, cfg); err != nil {
			return err
		}
		log.Info("HTML report written", "path", path)
	}
	if path := v.GetString("report"); path != "" {
		if err := writeReport(path, rep); err != nil {
			return err
		}
		log.Info("report written", "path", path)
	}
	return nil
}

// backtestConfig reads backtest's flags, but for the source's, into a
// backtest.Config.
func backtestConfig(v *viper.Viper, log *slog.Logger) (backtest.Config, error) {
	cfg := backtest.DefaultConfig()
	var err error
	if cfg.Config, err = pipelineConfig(v, cfg.Config); err != nil {
		return cfg, err
	}
	cfg.Also = splitList(v.GetString("models"))
	cfg.Partitions = v.GetInt("partitions")
	cfg.Rolling = v.GetInt("rolling")
	cfg.Logger = log
	if cfg.Mix, err = mixConfig(v); err != nil {
		return cfg, err
	}
	if cfg.Rolling < 1 {
		return cfg, fmt.Errorf("--rolling %d: want at least one origin", cfg.Rolling)
	}
	if origin := v.GetString("origin"); origin != "" {
		if cfg.Origin, err = parseDate(origin); err != nil {
			return cfg, fmt.Errorf("--origin: %w", err)
		}
	}
	return cfg, nil
}

// replayInput is what a backtest replays: a file source or a topic range.
type replayInput struct {
	src   source.Source
	close func() error
	topic string
	rng   backtest.TopicRange
	name  string // for the report: "m5:DIR", "events:FILE" or "topic:NAME"
	total int64  // records, for progress; -1 when unknown
}

// openReplay opens the source the flags name and fills in the origin (and
// for M5 data the calendar) the source implies when the flags do not.
func openReplay(v *viper.Viper, cfg *backtest.Config) (replayInput, error) {
	in := replayInput{total: -1}
	m5Dir, eventsPath, topic := v.GetString("m5"), v.GetString("events"), v.GetString("topic")
	synthetic := ""
	if v.GetBool("synthetic") {
		synthetic = "synthetic"
	}
	switch {
	case countSet(m5Dir, eventsPath, topic, synthetic) != 1:
		return in, errors.New("give one of --m5, --events, --synthetic and --topic")
	case synthetic != "":
		if err := openSynthetic(v, cfg, &in); err != nil {
			return in, err
		}
	case m5Dir != "":
		m, err := source.ReadM5(m5Dir)
		if err != nil {
			return in, fmt.Errorf("--m5: %w", err)
		}
		if cfg.Origin.IsZero() {
			cfg.Origin = m.Date(m.Train - 1)
		}
		if cfg.Calendar == nil && m.Calendar != nil {
			cfg.Calendar = dayFlags(m.Calendar, m.FirstDay)
		}
		_, in.total, _, _ = openSource("", m5Dir)
		in.src, in.name = m.Events(), "m5:"+m5Dir
	case eventsPath != "":
		if cfg.Origin.IsZero() {
			var err error
			if cfg.Origin, err = defaultOrigin(eventsPath, cfg.Model.Horizon, cfg.Window); err != nil {
				return in, err
			}
		}
		f, err := source.OpenFile(eventsPath)
		if err != nil {
			return in, fmt.Errorf("--events: %w", err)
		}
		in.src, in.close, in.name = f, f.Close, "events:"+eventsPath
	default:
		if cfg.Origin.IsZero() {
			return in, errors.New("--topic needs --origin")
		}
		in.topic, in.name = topic, "topic:"+topic
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &in.rng.From}, {"to", &in.rng.To}} {
		if val := v.GetString(f.name); val != "" {
			if topic == "" {
				return in, fmt.Errorf("--%s selects records of a --topic", f.name)
			}
			var err error
			if *f.dst, err = parseDate(val); err != nil {
				return in, fmt.Errorf("--%s: %w", f.name, err)
			}
		}
	}
	return in, nil
}

// writeReport writes the JSON report to path.
func writeReport(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

func countSet(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// defaultOrigin scans an events file for its last event time and returns
// the start of the bucket a horizon before that day's.
func defaultOrigin(path string, horizon int, wcfg window.Config) (time.Time, error) {
	f, err := source.OpenFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("--events: %w", err)
	}
	defer f.Close()
	var last time.Time
	for {
		r, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return time.Time{}, err
		}
		if r.Time.After(last) {
			last = r.Time
		}
	}
	if last.IsZero() {
		return time.Time{}, errors.New("--events: no event with a valid time; give --origin")
	}
	spec, err := window.NewSpec(wcfg.Width, wcfg.Location)
	if err != nil {
		return time.Time{}, err
	}
	return spec.Start(spec.Index(last) - int64(horizon)), nil
}

// report is the JSON report of the backtest protocol, with extra fields.
type report struct {
	Protocol    string                   `json:"protocol"`
	Dataset     reportDataset            `json:"dataset"`
	Horizon     int                      `json:"horizon"`
	FixedOrigin map[string]model.Metrics `json:"fixed_origin"`
	Rolling     map[string]any           `json:"rolling"`
	Decisions   *backtest.Decisions      `json:"decisions,omitempty"`
	Promotions  *backtest.Promotions     `json:"promotions,omitempty"`
	Input       reportInput              `json:"input"`
	Run         reportRun                `json:"run"`
}

type reportDataset struct {
	Series   int    `json:"series"`
	Days     int    `json:"days"`
	FirstDay string `json:"first_day"`
	Origin   string `json:"origin"`
	Bucket   string `json:"bucket"`
	Source   string `json:"source"`
}

type reportInput struct {
	Records     int64            `json:"records"`
	Accepted    int64            `json:"accepted"`
	Duplicates  int64            `json:"duplicates"`
	Late        int64            `json:"late"`
	DeadLetters map[string]int64 `json:"dead_letters"`
	Partitions  int              `json:"partitions"`
	Published   string           `json:"published"`
}

type reportRun struct {
	WallSeconds float64            `json:"wall_seconds"`
	Events      int64              `json:"events"`
	Forecasts   int64              `json:"forecasts"`
	TrainSteps  int64              `json:"train_steps"`
	Seed        uint64             `json:"seed"`
	Version     string             `json:"version"`
	Stages      map[string]float64 `json:"stages"`
	Mixing      *reportMixing      `json:"mixing,omitempty"`
}

// reportMixing is what mixing the learners across partitions cost, per
// partition and round.
type reportMixing struct {
	Every                    int     `json:"every"`
	Gain                     float64 `json:"gain"`
	RoundsPerPartition       float64 `json:"rounds_per_partition"`
	PublishedBytesPerRound   float64 `json:"published_bytes_per_partition_round"`
	ReceivedBytesPerRound    float64 `json:"received_bytes_per_partition_round"`
	MillisecondsPerRound     float64 `json:"ms_per_mix"`
	WaitMillisecondsPerRound float64 `json:"wait_ms_per_mix"`
}

func newReport(res *backtest.Result, cfg backtest.Config, src string) *report {
	day := func(t time.Time) string {
		if cfg.Window.Width.String() == "1h" {
			return t.Format(time.RFC3339)
		}
		return t.Format(time.DateOnly)
	}
	rolling := map[string]any{"origins": cfg.Rolling}
	for name, m := range res.Rolling {
		rolling[name] = m
	}
	dl := map[string]int64{}
	for r, n := range res.DeadLetters {
		if n > 0 {
			dl[string(r)] = n
		}
	}
	return &report{
		Protocol: "trendstream-backtest/1",
		Dataset: reportDataset{Series: res.Series, Days: res.Buckets, FirstDay: day(res.First),
			Origin: day(res.Origin), Bucket: cfg.Window.Width.String(), Source: src},
		Horizon:     cfg.Model.Horizon,
		FixedOrigin: res.Fixed,
		Rolling:     rolling,
		Decisions:   res.Decisions,
		Promotions:  res.Promotions,
		Input: reportInput{Records: res.Records, Accepted: res.Accepted, Duplicates: res.Duplicates,
			Late: res.Late, DeadLetters: dl, Partitions: res.Partitions, Published: cfg.Published},
		Run: reportRun{Events: res.Records, Forecasts: res.Forecasts, TrainSteps: res.TrainSteps, Seed: cfg.Learner.Seed,
			Version: buildVersion(), Mixing: newReportMixing(res, cfg)},
	}
}

// newReportMixing returns the mixing cost of a backtest whose partitions
// mixed, or nil.
func newReportMixing(res *backtest.Result, cfg backtest.Config) *reportMixing {
	mx := res.Mixing
	if mx.Rounds == 0 {
		return nil
	}
	n := float64(mx.Rounds)
	return &reportMixing{Every: cfg.Mix.Every, Gain: cfg.Mix.Gain, RoundsPerPartition: n / float64(res.Partitions),
		PublishedBytesPerRound: float64(mx.Published) / n, ReceivedBytesPerRound: float64(mx.Received) / n,
		MillisecondsPerRound: 1000 * mx.Seconds / n, WaitMillisecondsPerRound: 1000 * mx.WaitSeconds / n}
}

// buildVersion identifies the binary: its module version and VCS revision.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "+dirty"
		}
	}
	return v
}

// printSummary prints the models x metrics tables, marking the best value
// of each column with '*'.
func printSummary(w io.Writer, rep *report) {
	fmt.Fprintf(w, "backtest of %d series over %d buckets from %s, origin %s, horizon %d\n",
		rep.Dataset.Series, rep.Dataset.Days, rep.Dataset.FirstDay, rep.Dataset.Origin, rep.Horizon)
	rolling := map[string]model.Metrics{}
	for k, v := range rep.Rolling {
		if m, ok := v.(model.Metrics); ok {
			rolling[k] = m
		}
	}
	fmt.Fprintln(w, "\nfixed origin")
	summaryTable(w, rep.FixedOrigin)
	fmt.Fprintf(w, "\nrolling (%v origins)\n", rep.Rolling["origins"])
	summaryTable(w, rolling)
	decisionsSummary(w, rep.Decisions)
	promoSummary(w, rep.Promotions)
}

func summaryTable(w io.Writer, ms map[string]model.Metrics) {
	names := make([]string, 0, len(ms))
	for n := range ms {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		rank := func(n string) int {
			if n == backtest.NamePublished {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	cols := []struct {
		name string
		get  func(model.Metrics) float64
		best func(float64) float64 // smaller is better
	}{
		{"mae", func(m model.Metrics) float64 { return m.MAE }, ident},
		{"rmse", func(m model.Metrics) float64 { return m.RMSE }, ident},
		{"bias", func(m model.Metrics) float64 { return m.Bias }, math.Abs},
		{"rmsse", func(m model.Metrics) float64 { return m.RMSSE }, ident},
		{"wrmsse", func(m model.Metrics) float64 { return m.WRMSSE }, ident},
		{"spl", func(m model.Metrics) float64 { return m.SPL }, ident},
		{"wspl", func(m model.Metrics) float64 { return m.WSPL }, ident},
		{"coverage80", func(m model.Metrics) float64 { return m.Coverage80 }, func(v float64) float64 { return math.Abs(v - 0.8) }},
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "model\t")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c.name)
	}
	fmt.Fprintln(tw, "scored\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", n)
		for _, c := range cols {
			v := c.get(ms[n])
			mark := " "
			best := true
			for _, o := range names {
				if o != backtest.NamePublished && c.best(c.get(ms[o])) < c.best(v) {
					best = false
				}
			}
			if best {
				mark = "*"
			}
			fmt.Fprintf(tw, "%.3f%s\t", v, mark)
		}
		fmt.Fprintf(tw, "%d\t\n", ms[n].SeriesScored)
	}
	tw.Flush()
}

func ident(v float64) float64 { return v }
