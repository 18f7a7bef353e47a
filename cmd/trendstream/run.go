package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
	"github.com/trendstream/trendstream/stream/source"
	"github.com/trendstream/trendstream/window"
)

func runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Consume sales events and publish forecasts",
		Long: `run joins the consumer group, processes the input partitions assigned to it
and publishes a forecast for every series at every bucket close. State and
input offsets are committed together to Badger in --state-dir, so each event
is counted exactly once across crashes and restarts; forecasts and dead
letters are delivered at least once.

HTTP on --http-addr: the web console at /, /healthz, /readyz, /metrics and
GET /v1/series/{store}/{sku}; --http-tls-cert and --http-tls-key serve it
over TLS, --http-token-file requires a bearer token (or a console sign-in).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, log, err := setup(cmd)
			if err != nil {
				return err
			}
			cfg, err := processorConfig(v, log)
			if err != nil {
				return err
			}
			web, err := readWebConfig(v, v.GetString("http-addr"))
			if err != nil {
				return err
			}
			svc, err := startService(log, cfg, v.GetString("state-dir"), web, newRegistry())
			if err != nil {
				return err
			}
			if v.GetBool("pprof") {
				svc.enablePprof()
			}
			return svc.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	addKafkaFlags(fs)
	fs.String("group", "trendstream", "consumer group id")
	fs.String("input-topic", "sales", "topic of sales events")
	fs.String("output-topic", "forecasts", "topic forecasts are published to")
	fs.String("dlq-topic", "sales.dlq", "topic rejected records are sent to")
	fs.Int("partitions", 8, "partitions of the input topic if run creates it")
	fs.Bool("create-topics", true, "create missing input, output, dead-letter and changelog topics at start-up")
	fs.Bool("changelog", true, "mirror every partition's state to a compacted changelog topic and restore moved partitions from it")
	fs.String("changelog-topic", "", "changelog topic (default: the group id followed by .changelog)")
	fs.Bool("standby", false, "keep the partitions other instances own warm from the changelog, so taking one over restores only its latest records")
	fs.Duration("standby-interval", 5*time.Second, "how often standby partitions catch up with the changelog")
	fs.String("state-dir", "./data", "directory of the Badger state store")
	fs.String("http-addr", "127.0.0.1:8080", "address of the HTTP API, health checks and metrics")
	addHTTPFlags(fs)
	addProcessingFlags(fs)
	fs.String("late-policy", "dlq", "what happens to events behind the watermark: dlq or drop (both counted)")
	fs.Duration("dedup-horizon", 48*time.Hour, "event time during which a repeated event_id is dropped as a duplicate")
	fs.Float64("min-qty", 0, "smallest accepted quantity (negative accepts returns)")
	fs.Float64("max-qty", 1e6, "largest accepted quantity")
	fs.Duration("max-future", 24*time.Hour, "how far past the wall clock an event time may be (negative disables)")
	fs.Int("max-bytes", 4096, "largest accepted event payload in bytes")
	fs.String("start-offset", "earliest", "where a partition without local state starts: earliest or latest")
	fs.Int("checkpoint-every", 1, "bucket closes between checkpoints of the LSTM into a partition's state commit (revocation and shutdown always checkpoint)")
	fs.Int("max-series", 100000, "series kept in memory per partition; the least recently updated beyond it are evicted to the state store until their next event (0: no cap)")
	fs.Int("batch-size", 50000, "most records processed per state commit")
	fs.Duration("batch-wait", 100*time.Millisecond, "how long a batch waits for more records once it has one")
	fs.Duration("session-timeout", 10*time.Second, "consumer group session timeout: how soon a crashed member's partitions move")
	fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the HTTP address")
	return cmd
}

// addKafkaFlags adds the connection flags every Kafka client command has.
func addKafkaFlags(fs *pflag.FlagSet) {
	fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap addresses")
	fs.Bool("tls", false, "connect to the brokers with TLS (implied by the other --tls flags)")
	fs.String("tls-ca", "", "PEM file of the CAs that sign the brokers' certificates; the system's by default")
	fs.String("tls-cert", "", "PEM client certificate, for brokers that authenticate clients by certificate")
	fs.String("tls-key", "", "PEM key of the client certificate")
	fs.String("tls-server-name", "", "name to check in the brokers' certificates, if not their address")
	fs.String("sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.String("sasl-username", "", "SASL user")
	fs.String("sasl-password-file", "", "file holding the SASL password; TRENDSTREAM_SASL_PASSWORD also sets it")
}

// connection reads the Kafka connection flags. The SASL password comes
// from --sasl-password-file or TRENDSTREAM_SASL_PASSWORD, never from a
// flag, so it does not show in process listings; it is never logged.
func connection(v *viper.Viper) (stream.Connection, error) {
	password := v.GetString("sasl-password")
	if path := v.GetString("sasl-password-file"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return stream.Connection{}, fmt.Errorf("--sasl-password-file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	tc, mech, err := stream.SecurityConfig{
		TLS:           v.GetBool("tls"),
		CAFile:        v.GetString("tls-ca"),
		CertFile:      v.GetString("tls-cert"),
		KeyFile:       v.GetString("tls-key"),
		ServerName:    v.GetString("tls-server-name"),
		SASLMechanism: v.GetString("sasl-mechanism"),
		Username:      v.GetString("sasl-username"),
		Password:      password,
	}.Build()
	if err != nil {
		return stream.Connection{}, err
	}
	brokers := splitList(v.GetString("brokers"))
	if len(brokers) == 0 {
		return stream.Connection{}, errors.New("--brokers is empty")
	}
	return stream.Connection{Brokers: brokers, TLS: tc, SASL: mech}, nil
}

// addProcessingFlags adds the windowing and forecasting flags shared by
// run, demo and backtest.
func addProcessingFlags(fs *pflag.FlagSet) {
	fs.String("bucket", "1d", "bucket width: 1h, 1d or 1w")
	fs.String("timezone", "UTC", "IANA time zone buckets align to")
	fs.Duration("lateness", time.Hour, "allowed lateness: the watermark trails the newest event time by this much")
	fs.Int("history", 0, "closed buckets kept per series, at least 28; 0 keeps what the forecasters need (84, or 112 with the LSTM)")
	fs.Int("horizon", 28, "buckets forecast")
	fs.String("quantiles", "0.1,0.5,0.9", "comma-separated quantile levels; must include 0.1, 0.5 and 0.9")
	fs.String("model", stream.NameAuto, "published forecaster: auto (per series, the candidates' means weighted by recent accuracy and the best recent quantiles), lstm, naive, seasonal_naive, ma28, ets or tsb")
	fs.String("candidates", "lstm,tsb,ma28", "comma-separated forecasters auto combines")
	fs.String("fallback", model.NameTSB, "candidate auto publishes alone until the candidates have been scored")
	fs.Int("lstm-layers", 2, "LSTM layers (1 or 2)")
	fs.Int("lstm-hidden", 32, "LSTM hidden units per layer")
	fs.Int("lstm-window", 56, "LSTM input window in buckets")
	fs.Float64("lstm-lr", 3e-3, "LSTM Adam learning rate")
	fs.Int("lstm-minibatch", 512, "LSTM examples per optimizer step")
	fs.Int("lstm-epochs", 1, "LSTM passes over the examples of each bucket close")
	fs.Uint64("lstm-seed", 1, "LSTM initialization and shuffling seed")
	fs.Int64("lstm-min-steps", 50, "optimizer steps the LSTM takes before auto may use it")
	fs.Float64("lstm-average", 0.995, "decay per optimizer step of the moving average of the LSTM's weights that forecasts use, in [0, 1) (0: the latest weights)")
	fs.Int("lstm-refresh", 7, "buckets between full runs of a series' LSTM window; in between a forecast steps the carried state (1: always full)")
	fs.String("calendar", "", "M5-format calendar.csv whose event and SNAP flags the LSTM sees")
}

// windowConfig reads the bucketing flags.
func windowConfig(v *viper.Viper) (window.Config, error) {
	w, err := window.ParseWidth(v.GetString("bucket"))
	if err != nil {
		return window.Config{}, fmt.Errorf("--bucket: %w", err)
	}
	loc, err := time.LoadLocation(v.GetString("timezone"))
	if err != nil {
		return window.Config{}, fmt.Errorf("--timezone: %w", err)
	}
	lateness := v.GetDuration("lateness")
	if lateness == 0 {
		// Zero means the default to window.Config; a literal zero lateness
		// is a nanosecond here.
		lateness = time.Nanosecond
	}
	return window.Config{Width: w, Location: loc, Lateness: lateness, History: v.GetInt("history")}, nil
}

// forecastingConfig reads the forecasting flags.
func forecastingConfig(v *viper.Viper) (stream.Forecasting, error) {
	mcfg, err := modelConfig(v)
	if err != nil {
		return stream.Forecasting{}, err
	}
	avg := v.GetFloat64("lstm-average")
	switch {
	case !(avg >= 0 && avg < 1):
		return stream.Forecasting{}, fmt.Errorf("--lstm-average %v outside [0, 1)", avg)
	case avg == 0:
		avg = -1 // LearnerConfig's zero is the default
	}
	f := stream.Forecasting{
		Model:           mcfg,
		Published:       v.GetString("model"),
		Candidates:      splitList(v.GetString("candidates")),
		Fallback:        v.GetString("fallback"),
		LearnerMinSteps: v.GetInt64("lstm-min-steps"),
		Learner: model.LearnerConfig{
			Layers:        v.GetInt("lstm-layers"),
			Hidden:        v.GetInt("lstm-hidden"),
			Window:        v.GetInt("lstm-window"),
			LearningRate:  v.GetFloat64("lstm-lr"),
			MiniBatch:     v.GetInt("lstm-minibatch"),
			StepsPerClose: v.GetInt("lstm-epochs"),
			Refresh:       v.GetInt("lstm-refresh"),
			Average:       avg,
			Seed:          v.GetUint64("lstm-seed"),
		},
	}
	if path := v.GetString("calendar"); path != "" {
		cal, first, err := source.ReadM5Calendar(path)
		if err != nil {
			return f, fmt.Errorf("--calendar: %w", err)
		}
		f.Calendar, f.CalendarStart = cal, first
	}
	return f, nil
}

// modelConfig reads the horizon and quantile flags.
func modelConfig(v *viper.Viper) (model.Config, error) {
	var levels []float64
	for _, s := range splitList(v.GetString("quantiles")) {
		q, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return model.Config{}, fmt.Errorf("--quantiles: %w", err)
		}
		levels = append(levels, q)
	}
	cfg := model.Config{Horizon: v.GetInt("horizon"), Levels: levels}
	if cfg.Horizon < 1 {
		return cfg, fmt.Errorf("--horizon %d is below 1", cfg.Horizon)
	}
	return cfg, cfg.Validate()
}

// processorConfig reads run's flags into a stream.Config.
func processorConfig(v *viper.Viper, log *slog.Logger) (stream.Config, error) {
	wcfg, err := windowConfig(v)
	if err != nil {
		return stream.Config{}, err
	}
	fcfg, err := forecastingConfig(v)
	if err != nil {
		return stream.Config{}, err
	}
	fcfg.CheckpointEvery = v.GetInt("checkpoint-every")
	conn, err := connection(v)
	if err != nil {
		return stream.Config{}, err
	}
	maxFuture := v.GetDuration("max-future")
	if maxFuture == 0 {
		maxFuture = time.Nanosecond
	}
	return stream.Config{
		Connection:      conn,
		Group:           v.GetString("group"),
		InputTopic:      v.GetString("input-topic"),
		OutputTopic:     v.GetString("output-topic"),
		DLQTopic:        v.GetString("dlq-topic"),
		Partitions:      v.GetInt("partitions"),
		NoCreateTopics:  !v.GetBool("create-topics"),
		NoChangelog:     !v.GetBool("changelog"),
		ChangelogTopic:  v.GetString("changelog-topic"),
		Standby:         v.GetBool("standby"),
		StandbyInterval: v.GetDuration("standby-interval"),
		Window:          wcfg,
		Forecasting:     fcfg,
		Limits: stream.Limits{
			MaxBytes:  v.GetInt("max-bytes"),
			MinQty:    v.GetFloat64("min-qty"),
			MaxQty:    v.GetFloat64("max-qty"),
			MaxFuture: maxFuture,
		},
		LatePolicy:     stream.LatePolicy(v.GetString("late-policy")),
		DedupHorizon:   v.GetDuration("dedup-horizon"),
		StartOffset:    stream.StartOffset(v.GetString("start-offset")),
		BatchSize:      v.GetInt("batch-size"),
		BatchWait:      v.GetDuration("batch-wait"),
		MaxSeries:      cmp.Or(v.GetInt("max-series"), -1),
		SessionTimeout: v.GetDuration("session-timeout"),
		Logger:         log,
	}, nil
}

// service is a processor with its state store and HTTP server.
type service struct {
	log     *slog.Logger
	db      *state.DB
	proc    *stream.Processor
	mux     *http.ServeMux
	srv     *http.Server
	console *console.Server // nil without the console
	addr    string
	served  chan error
}

// startService opens the state store, builds the processor and starts
// serving HTTP as web says; run then processes until its context ends. reg
// receives the metrics.
func startService(log *slog.Logger, cfg stream.Config, stateDir string, web webConfig, reg *prometheus.Registry) (*service, error) {
	db, err := state.Open(state.Config{Dir: stateDir, Logger: log})
	if err != nil {
		return nil, err
	}
	cfg.Registerer = reg
	proc, err := stream.New(cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	tc, err := web.tlsConfig()
	if err != nil {
		db.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", web.Addr)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	s := &service{log: log, db: db, proc: proc, addr: ln.Addr().String(), served: make(chan error, 1), mux: http.NewServeMux()}
	s.mux.Handle("/", proc.Handler(reg))
	handler, err := s.webHandler(web, reg)
	if err != nil {
		ln.Close()
		db.Close()
		return nil, err
	}
	s.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tc}
	go func() { s.served <- s.serve(ln) }()
	cfg = proc.Config()
	log.Info("processing", "brokers", cfg.Brokers, "group", cfg.Group, "input", cfg.InputTopic,
		"output", cfg.OutputTopic, "dlq", cfg.DLQTopic, "state_dir", stateDir, "http", s.baseURL(),
		"console", s.console != nil, "http_token", web.Token != "",
		"bucket", cfg.Window.Width, "model", cfg.Published)
	return s, nil
}

// enablePprof serves the runtime profiles under /debug/pprof/.
func (s *service) enablePprof() {
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// run processes until ctx ends, then shuts down in order: the processor
// leaves the group after committing its partitions, the console's live
// streams end (they would hold the HTTP server's shutdown up), the HTTP
// server stops, the state store closes.
func (s *service) run(ctx context.Context) error {
	stopConsole := s.startConsole(ctx)
	runErr := s.proc.Run(ctx)
	stopConsole()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("stopping HTTP server", "err", err)
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("HTTP server", "err", err)
	}
	closeErr := s.db.Close()
	if runErr != nil {
		return runErr
	}
	s.log.Info("stopped cleanly")
	return closeErr
}

// newRegistry returns a metrics registry with Go runtime and process
// metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
