package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trendstream/trendstream/console"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
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
GET /v1/series/{store}/{sku}, with --decisions also GET /v1/trending and
GET /v1/series/{store}/{sku}/replenishment; --http-tls-cert and --http-tls-key serve it
over TLS, --http-token-file requires a bearer token (or a console sign-in).
Go profiles under /debug/pprof/ on --pprof-addr, if given.`,
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
			if mib := v.GetInt64("memory-limit-mib"); mib > 0 {
				debug.SetMemoryLimit(mib << 20)
			}
			svc, err := startService(log, cfg, stateConfig(v, log), web, newRegistry())
			if err != nil {
				return err
			}
			if addr := v.GetString("pprof-addr"); addr != "" {
				if err := svc.servePprof(addr); err != nil {
					svc.shutdown()
					return err
				}
			}
			return svc.run(cmd.Context())
		},
	}
	def := stream.DefaultConfig()
	fs := cmd.Flags()
	addKafkaFlags(fs)
	fs.String("group", def.Group, "consumer group id")
	fs.String("input-topic", def.InputTopic, "topic of sales events")
	fs.String("output-topic", def.OutputTopic, "topic forecasts are published to")
	fs.String("dlq-topic", def.DLQTopic, "topic rejected records are sent to")
	addDecisionTopicFlags(fs, def)
	addPlansTopicFlag(fs, def)
	fs.Int("dlq-max-bytes", def.DLQMaxBytes, "most bytes of a rejected record's key, and of its value, a dead letter carries; longer ones are cut, with the original's size and SHA-256 in headers (at most 262144)")
	fs.Int("partitions", def.Partitions, "partitions of the input topic if run creates it")
	fs.Int("replication-factor", def.ReplicationFactor, "replicas of the topics run creates (0: the brokers' default.replication.factor)")
	fs.Bool("create-topics", !def.NoCreateTopics, "create missing input, output, dead-letter and changelog topics at start-up")
	fs.Bool("changelog", !def.NoChangelog, "mirror every partition's state to a compacted changelog topic and restore moved partitions from it")
	fs.String("changelog-topic", def.ChangelogTopic, "changelog topic (default: the group id followed by .changelog)")
	fs.Bool("standby", def.Standby, "keep the partitions other instances own warm from the changelog, so taking one over restores only its latest records")
	fs.Duration("standby-interval", def.StandbyInterval, "how often standby partitions catch up with the changelog")
	fs.String("state-dir", "./data", "directory of the Badger state store")
	sdef := state.DefaultConfig("")
	fs.Int64("state-memtable-mib", sdef.MemTableSize>>20, "size of each of the state store's memtables in MiB; a commit above 15% of it is split into several transactions")
	fs.Int("state-memtables", sdef.NumMemtables, "memtables the state store keeps in memory before writes wait for a flush to disk")
	fs.Int64("state-block-cache-mib", sdef.BlockCacheSize>>20, "the state store's block cache in MiB")
	fs.Int64("memory-limit-mib", defaultMemoryLimitMiB, "Go soft memory limit in MiB: the garbage collector works harder near it so the heap stays within it (0: none, GOMEMLIMIT applies)")
	fs.String("compression", string(def.Compression), "codec of the record batches written to the output and changelog topics: none, gzip, snappy, lz4 or zstd")
	fs.String("http-addr", "127.0.0.1:8080", "address of the HTTP API, health checks and metrics")
	addHTTPFlags(fs)
	addProcessingFlags(fs, def.Config)
	addMixFlags(fs, def.Mix)
	fs.String("late-policy", string(def.LatePolicy), "what happens to events behind the watermark: dlq or drop (both counted)")
	fs.Duration("dedup-horizon", def.DedupHorizon, "event time during which a repeated event_id is dropped as a duplicate; at least the longest bucket (25h for 1d, 169h for 1w), or 0 to turn deduplication off")
	fs.Int("dedup-max-ids", def.DedupMaxIDs, "event ids remembered per partition, about 50 bytes each; beyond it the oldest event-time hours are forgotten early (counted in dedup_forgotten_total) (0: no cap)")
	fs.Float64("min-qty", def.Limits.MinQty, "smallest accepted quantity (negative accepts returns)")
	fs.Float64("max-qty", def.Limits.MaxQty, "largest accepted quantity")
	fs.Duration("max-future", def.Limits.MaxFuture, "how far past the wall clock an event time may be (negative disables)")
	fs.Duration("max-past", def.Limits.MaxPast, "how far before the wall clock an event time may be (negative disables, for replays of history)")
	fs.Int("max-bytes", def.Limits.MaxBytes, "largest accepted event payload in bytes")
	fs.String("start-offset", string(def.StartOffset), "where a partition without local state starts: earliest or latest")
	fs.Int("checkpoint-every", def.CheckpointEvery, "bucket closes between checkpoints of the learners into a partition's state commit (revocation and shutdown always checkpoint)")
	fs.Duration("retire-after", def.RetireAfter, "event time without a sale after which a series' state, buckets and latest forecast are deleted; its next event starts it afresh (0: never)")
	fs.Int("max-series", def.MaxSeries, "series kept in memory per partition; the least recently updated beyond it are evicted to the state store until their next event (0: no cap)")
	fs.Int("batch-size", def.BatchSize, "most records processed per state commit")
	fs.Duration("batch-wait", def.BatchWait, "how long a batch waits for more records once it has one")
	fs.Duration("idle-timeout", def.IdleTimeout, "time without input after which a partition's watermark follows the wall clock minus the lateness, closing its buckets; not while it has unread records or replays history (0: never)")
	fs.Duration("session-timeout", def.SessionTimeout, "consumer group session timeout: how soon a crashed member's partitions move")
	fs.String("pprof-addr", "", "address of a second HTTP server with Go profiles under /debug/pprof/, apart from the unauthenticated API (empty: none)")
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

// defaultMemoryLimitMiB is run's Go soft memory limit: it leaves room
// below a 600 MiB budget for the memory Go does not manage (the state
// store's memory-mapped files, thread stacks).
const defaultMemoryLimitMiB = 450

// stateConfig reads run's state store flags.
func stateConfig(v *viper.Viper, log *slog.Logger) state.Config {
	cfg := state.DefaultConfig(v.GetString("state-dir"))
	cfg.MemTableSize = v.GetInt64("state-memtable-mib") << 20
	cfg.NumMemtables = v.GetInt("state-memtables")
	cfg.BlockCacheSize = v.GetInt64("state-block-cache-mib") << 20
	cfg.Logger = log
	return cfg
}

// processorConfig reads run's flags into a stream.Config.
func processorConfig(v *viper.Viper, log *slog.Logger) (stream.Config, error) {
	cfg := stream.DefaultConfig()
	var err error
	if cfg.Config, err = pipelineConfig(v, cfg.Config); err != nil {
		return cfg, err
	}
	if cfg.Connection, err = connection(v); err != nil {
		return cfg, err
	}
	cfg.CheckpointEvery = v.GetInt("checkpoint-every")
	cfg.Group = v.GetString("group")
	cfg.InputTopic = v.GetString("input-topic")
	cfg.OutputTopic = v.GetString("output-topic")
	cfg.DLQTopic = v.GetString("dlq-topic")
	cfg.TrendsTopic = v.GetString("trends-topic")
	cfg.ReplenishmentTopic = v.GetString("replenishment-topic")
	cfg.CatalogTopic = v.GetString("catalog-topic")
	cfg.InventoryTopic = v.GetString("inventory-topic")
	cfg.PlansTopic = v.GetString("plans-topic")
	cfg.DLQMaxBytes = v.GetInt("dlq-max-bytes")
	cfg.Partitions = v.GetInt("partitions")
	cfg.ReplicationFactor = v.GetInt("replication-factor")
	cfg.Compression = stream.Compression(v.GetString("compression"))
	cfg.NoCreateTopics = !v.GetBool("create-topics")
	cfg.NoChangelog = !v.GetBool("changelog")
	cfg.ChangelogTopic = v.GetString("changelog-topic")
	cfg.Standby = v.GetBool("standby")
	if cfg.Mix, err = mixConfig(v); err != nil {
		return cfg, err
	}
	cfg.StandbyInterval = v.GetDuration("standby-interval")
	cfg.Limits.MaxBytes = v.GetInt("max-bytes")
	cfg.Limits.MinQty = v.GetFloat64("min-qty")
	cfg.Limits.MaxQty = v.GetFloat64("max-qty")
	cfg.Limits.MaxFuture = v.GetDuration("max-future")
	cfg.Limits.MaxPast = v.GetDuration("max-past")
	cfg.LatePolicy = pipeline.LatePolicy(v.GetString("late-policy"))
	cfg.DedupHorizon = v.GetDuration("dedup-horizon")
	cfg.DedupMaxIDs = v.GetInt("dedup-max-ids")
	cfg.StartOffset = stream.StartOffset(v.GetString("start-offset"))
	cfg.BatchSize = v.GetInt("batch-size")
	cfg.BatchWait = v.GetDuration("batch-wait")
	cfg.MaxSeries = v.GetInt("max-series")
	cfg.RetireAfter = v.GetDuration("retire-after")
	cfg.SessionTimeout = v.GetDuration("session-timeout")
	cfg.IdleTimeout = v.GetDuration("idle-timeout")
	cfg.Logger = log
	return cfg, nil
}

// service is a processor with its state store and HTTP servers.
type service struct {
	log  *slog.Logger
	db   *state.DB
	proc *stream.Processor
	mux  *http.ServeMux
	srv  *http.Server
	// https is whether srv serves TLS. It is decided before srv serves:
	// http.Server.Serve sets srv.TLSConfig itself (for HTTP/2), so that
	// field cannot tell afterwards.
	https   bool
	console *console.Server // nil without the console
	addr    string
	pprof   *http.Server // nil unless servePprof started it
	// pprofAddr is the address pprof listens on.
	pprofAddr string
	served    chan error // one result per server started
}

// Timeouts of the HTTP API: a client cannot hold a connection, send its
// headers or read an answer for longer. The API's answers are small; the
// console's live streams set their own deadline per event.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	// pprofWriteTimeout leaves room for CPU profiles and traces of up to
	// a few minutes (?seconds=).
	pprofWriteTimeout = 5 * time.Minute
)

// startService opens the state store, builds the processor and starts
// serving HTTP as web says; run then processes until its context ends. reg
// receives the metrics.
func startService(log *slog.Logger, cfg stream.Config, scfg state.Config, web webConfig, reg *prometheus.Registry) (*service, error) {
	stateDir := scfg.Dir
	db, err := state.Open(scfg)
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
	s := &service{log: log, db: db, proc: proc, addr: ln.Addr().String(), served: make(chan error, 2), mux: http.NewServeMux()}
	s.mux.Handle("/", proc.Handler(reg))
	handler, err := s.webHandler(web, reg)
	if err != nil {
		ln.Close()
		db.Close()
		return nil, err
	}
	s.srv = &http.Server{Handler: handler, TLSConfig: tc, ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
	s.https = tc != nil
	s.serve(s.srv, ln)
	cfg = proc.Config()
	log.Info("processing", "brokers", cfg.Brokers, "group", cfg.Group, "input", cfg.InputTopic,
		"output", cfg.OutputTopic, "dlq", cfg.DLQTopic, "state_dir", stateDir, "http", s.baseURL(),
		"console", s.console != nil, "http_token", web.Token != "",
		"bucket", cfg.Window.Width, "model", cfg.Published)
	return s, nil
}

// servePprof serves the runtime profiles under /debug/pprof/ on addr, a
// server of their own: they reveal the process's internals and take
// long to answer, so they stay off the API's address, guard and timeouts.
func (s *service) servePprof(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: pprofWriteTimeout, IdleTimeout: idleTimeout}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	s.serve(srv, ln)
	s.pprof, s.pprofAddr = srv, ln.Addr().String()
	s.log.Info("serving Go profiles", "pprof", s.pprofAddr)
	return nil
}

// run processes until ctx ends, then shuts down in order: the processor
// leaves the group after committing its partitions, the console's live
// streams end (they would hold the HTTP server's shutdown up), then the
// servers and the store stop (see shutdown).
func (s *service) run(ctx context.Context) error {
	stopConsole := s.startConsole(ctx)
	runErr := s.proc.Run(ctx)
	stopConsole()
	closeErr := s.shutdown()
	if runErr != nil {
		return runErr
	}
	s.log.Info("stopped cleanly")
	return closeErr
}

// shutdown stops the HTTP servers, then closes the state store.
func (s *service) shutdown() error {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	servers := []*http.Server{s.srv}
	if s.pprof != nil {
		servers = append(servers, s.pprof)
	}
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Warn("stopping HTTP server", "err", err)
		}
	}
	for range servers {
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("HTTP server", "err", err)
		}
	}
	return s.db.Close()
}

// newRegistry returns a metrics registry with Go runtime and process
// metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
