package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
	"github.com/trendstream/trendstream/stream"
)

func demoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run broker, generator and processor in one process and show live forecasts",
		Long: `demo starts a development broker (in memory), the synthetic retail
generator and the processor, and shows the forecasts as they are published:
a refreshing table on a terminal, periodic lines otherwise. The generator
first sends four weeks of history, then runs an hour of event time per
second, so a daily bucket closes every 24 seconds.

While it runs, the topics can be watched with kcat or trendstream tail, and
the processor's HTTP API answers; the addresses are printed at start.
--duration 0 runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: runDemo,
	}
	fs := cmd.Flags()
	fs.Duration("duration", 0, "stop after this long; 0 runs until interrupted")
	fs.String("listen", "127.0.0.1:9092", "address of the embedded broker (a free port if taken)")
	fs.Int("partitions", 4, "partitions of the demo topics")
	fs.String("http-addr", "127.0.0.1:8080", "address of the HTTP API (a free port if taken)")
	addHTTPFlags(fs)
	fs.String("state-dir", "", "state directory; a temporary one, removed at exit, by default")
	fs.Int("rows", 12, "series shown in the live table")
	addProcessingFlags(fs, demoConfig().Config)
	addGeneratorFlags(fs, generatorDefaults{skus: 8, outOfOrder: 0.02, late: 0.002, duplicate: 0.01, malformed: 0.002})
	return cmd
}

// demoConfig returns the processor defaults of the demo: the generator
// runs ahead of the clock from a backfill that --backfill may make older
// than the default --max-past, and decisions are on, for the live view's
// trending and replenishment sections.
func demoConfig() stream.Config {
	cfg := stream.DefaultConfig()
	cfg.Limits.MaxFuture, cfg.Limits.MaxPast = -1, -1
	cfg.Decisions.On = true
	return cfg
}

func runDemo(cmd *cobra.Command, _ []string) error {
	v, log, err := setup(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if d := v.GetDuration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	broker, err := startBroker(v.GetString("listen"), v.GetInt("partitions"), log)
	if err != nil && isAddrInUse(err) {
		log.Warn("broker address in use, picking a free port", "addr", v.GetString("listen"))
		broker, err = startBroker("127.0.0.1:0", v.GetInt("partitions"), log)
	}
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := broker.ListenAddrs()

	stateDir := v.GetString("state-dir")
	if stateDir == "" {
		if stateDir, err = os.MkdirTemp("", "trendstream-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(stateDir)
	}
	cfg := demoConfig()
	if cfg.Config, err = pipelineConfig(v, cfg.Config); err != nil {
		return err
	}
	cfg.Connection = stream.Connection{Brokers: brokers}
	cfg.Partitions = v.GetInt("partitions")
	cfg.Logger = log
	reg := newRegistry()
	web, err := readWebConfig(v, v.GetString("http-addr"))
	if err != nil {
		return err
	}
	svc, err := startDemoService(log, cfg, stateDir, web, reg)
	if err != nil {
		return err
	}
	gen, paceFrom, err := newGenerator(v)
	if err != nil {
		return err
	}
	cfg = svc.proc.Config()
	view := newLiveView(svc.proc, reg, v.GetInt("rows"))
	fmt.Fprintf(os.Stderr, `trendstream demo
  broker (in memory): %[1]s
  HTTP:               %[2]s/metrics, %[2]s/readyz, %[2]s/v1/series/S01/SKU-0001
%[4]s  watch forecasts:    kcat -C -b %[1]s -t forecasts -o end    or    go run ./cmd/trendstream tail --brokers %[1]s
  watch dead letters: kcat -C -b %[1]s -t sales.dlq -f '%%h %%s\n'
  state:              %[3]s
`, brokers[0], svc.baseURL(), stateDir, consoleLine(svc))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.run(gctx) })
	g.Go(func() error {
		_, err := stream.Produce(gctx, stream.ProduceConfig{Connection: cfg.Connection, Topic: cfg.InputTopic,
			Partitions: cfg.Partitions, Speed: v.GetFloat64("speed"), PaceFrom: paceFrom, Logger: log}, gen)
		return err
	})
	g.Go(func() error { return followWhenReady(gctx, cfg.Connection, cfg.OutputTopic, view.forecast) })
	g.Go(func() error { return followWhenReady(gctx, cfg.Connection, cfg.DLQTopic, view.deadLetter) })
	if cfg.Decisions.On {
		g.Go(func() error { return followWhenReady(gctx, cfg.Connection, cfg.ReplenishmentTopic, view.plan) })
		g.Go(func() error { return demoStock(gctx, cfg, v.GetInt("stores"), v.GetInt("skus"), log) })
	}
	g.Go(func() error { view.show(gctx, os.Stdout); return nil })
	err = g.Wait()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return err
}

// demoStock writes a stock position for every other series of the
// generator to the inventory topic once, so that the live view shows
// suggested orders next to plans without one. It retries until the
// processor has created the topic or ctx ends.
func demoStock(ctx context.Context, cfg stream.Config, stores, skus int, log *slog.Logger) error {
	if cfg.InventoryTopic == "" {
		return nil
	}
	var msgs []kafka.Message
	now := time.Now().UTC().Format(time.RFC3339)
	for s := range stores {
		for k := 0; k < skus; k += 2 {
			id := fmt.Sprintf("S%02d/SKU-%04d", s+1, k+1)
			msgs = append(msgs, kafka.Message{Key: []byte(id),
				Value: fmt.Appendf(nil, `{"on_hand":%d,"on_order":0,"ts":%q}`, (s*7+k*5)%30, now)})
		}
	}
	w := cfg.Connection.Writer(cfg.InventoryTopic)
	defer w.Close()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		log.Debug("writing the demo's stock positions", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// startDemoService starts the processor's service on web.Addr, or on a
// free port when that is taken.
func startDemoService(log *slog.Logger, cfg stream.Config, stateDir string, web webConfig, reg *prometheus.Registry) (*service, error) {
	scfg := state.DefaultConfig(stateDir)
	scfg.Logger = log
	svc, err := startService(log, cfg, scfg, web, reg)
	if err != nil && isAddrInUse(err) {
		log.Warn("HTTP address in use, picking a free port", "addr", web.Addr)
		web.Addr = "127.0.0.1:0"
		svc, err = startService(log, cfg, scfg, web, reg)
	}
	return svc, err
}

func isAddrInUse(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "address already in use")
}

// followWhenReady follows a topic, waiting for the processor to create it.
func followWhenReady(ctx context.Context, conn stream.Connection, topic string, fn func(stream.Message)) error {
	for {
		err := stream.Follow(ctx, conn, topic, true, fn)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// liveView keeps the latest forecast of every series and renders them.
type liveView struct {
	proc *stream.Processor
	reg  *prometheus.Registry
	rows int

	mu        sync.Mutex
	latest    map[string]*pipeline.ForecastRecord
	forecasts int
	dlq       map[string]int
	plans     map[string]*planView
}

// planView is what the live view shows of a replenishment record.
type planView struct {
	Series       string    `json:"series"`
	Origin       time.Time `json:"origin"`
	ReorderPoint float64   `json:"reorder_point"`
	SafetyStock  float64   `json:"safety_stock"`
	OrderUpTo    float64   `json:"order_up_to"`
	Stock        *struct {
		OnHand  float64 `json:"on_hand"`
		OnOrder float64 `json:"on_order"`
	} `json:"stock"`
	OrderQty *float64 `json:"order_qty"`
	Cycle    struct {
		Mean float64 `json:"mean"`
	} `json:"cycle_demand"`
}

func newLiveView(proc *stream.Processor, reg *prometheus.Registry, rows int) *liveView {
	return &liveView{proc: proc, reg: reg, rows: rows, latest: map[string]*pipeline.ForecastRecord{}, dlq: map[string]int{},
		plans: map[string]*planView{}}
}

func (l *liveView) plan(m stream.Message) {
	var p planView
	if json.Unmarshal(m.Value, &p) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.plans[p.Series]; old == nil || !p.Origin.Before(old.Origin) {
		l.plans[p.Series] = &p
	}
}

func (l *liveView) forecast(m stream.Message) {
	var f pipeline.ForecastRecord
	if json.Unmarshal(m.Value, &f) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forecasts++
	if old := l.latest[f.Series]; old == nil || !f.Origin.Before(old.Origin) {
		l.latest[f.Series] = &f
	}
}

func (l *liveView) deadLetter(m stream.Message) {
	reason := "unknown"
	for _, h := range m.Headers {
		if h.Key == "reason" {
			reason = string(h.Value)
		}
	}
	l.mu.Lock()
	l.dlq[reason]++
	l.mu.Unlock()
}

// show renders the view every second until ctx ends: redrawing in place on
// a terminal, as a block of lines every ten seconds otherwise.
func (l *liveView) show(ctx context.Context, w *os.File) {
	tty := term.IsTerminal(int(w.Fd()))
	every := time.Second
	if !tty {
		every = 10 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if tty {
			fmt.Fprint(w, "\033[H\033[2J")
		}
		l.render(w)
	}
}

func (l *liveView) render(w io.Writer) {
	l.mu.Lock()
	fcs := make([]*pipeline.ForecastRecord, 0, len(l.latest))
	for _, f := range l.latest {
		fcs = append(fcs, f)
	}
	total := l.forecasts
	var dlq []string
	for r, n := range l.dlq {
		dlq = append(dlq, fmt.Sprintf("%s %d", r, n))
	}
	l.mu.Unlock()
	slices.Sort(dlq)
	slices.SortFunc(fcs, func(a, b *pipeline.ForecastRecord) int {
		return cmp.Or(cmp.Compare(b.Steps[0].Mean, a.Steps[0].Mean), strings.Compare(a.Series, b.Series))
	})

	fmt.Fprintf(w, "%s  series %d  forecasts %d  consumed %.0f  duplicates %.0f  dead letters: %s\n\n",
		time.Now().Format("15:04:05"), len(fcs), total, l.metric("trendstream_records_consumed_total"),
		l.metric("trendstream_duplicate_records_total"), cmp.Or(strings.Join(dlq, ", "), "none"))
	if len(fcs) == 0 {
		fmt.Fprintln(w, "waiting for the first buckets to close...")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\torigin\tlast 7 (actual/day)\tnext 7 (mean/day)\tp10-p90\ttrend\tmodel\t")
	for _, f := range fcs[:min(l.rows, len(fcs))] {
		n := min(7, len(f.Steps))
		var mean, p10, p90 float64
		for _, s := range f.Steps[:n] {
			mean += s.Mean / float64(n)
			p10 += s.P10 / float64(n)
			p90 += s.P90 / float64(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.1f-%.1f\t%s\t%s\t\n", f.Series, f.Origin.Format("Jan 02"),
			l.actual(f.Series), mean, p10, p90, trendText(f), f.Model)
	}
	tw.Flush()
	l.renderDecisions(w)
}

// renderDecisions renders the top trending series of every class across
// the processor's partitions and the replenishment plans with the largest
// suggested orders (the largest order-up-to levels where no stock
// position is known).
func (l *liveView) renderDecisions(w io.Writer) {
	if !l.proc.Config().Decisions.On {
		return
	}
	const top = 3
	fmt.Fprintln(w, "\ntrending (top 3 per class; last and next are 7-bucket totals)")
	tr, err := l.proc.Trending("", nil, top)
	if err != nil {
		fmt.Fprintln(w, "  ", err)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tseries\tscore\tlast\treference\tnext\t")
	rows := 0
	for _, c := range []string{"rising", "falling", "emerging", "fading"} {
		for _, s := range tr.Classes[c] {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f\t%.0f\t%.0f\t\n", c, s.Series, s.Score, s.Last, s.Reference, s.Next)
			rows++
		}
	}
	tw.Flush()
	if rows == 0 {
		fmt.Fprintln(w, "  no series trends yet (a comparison needs five weeks of history)")
	}

	l.mu.Lock()
	plans := make([]*planView, 0, len(l.plans))
	for _, p := range l.plans {
		plans = append(plans, p)
	}
	l.mu.Unlock()
	if len(plans) == 0 {
		return
	}
	order := func(p *planView) float64 {
		if p.OrderQty != nil {
			return *p.OrderQty
		}
		return -1
	}
	slices.SortFunc(plans, func(a, b *planView) int {
		return cmp.Or(cmp.Compare(order(b), order(a)), cmp.Compare(b.OrderUpTo, a.OrderUpTo), strings.Compare(a.Series, b.Series))
	})
	fmt.Fprintln(w, "\nreplenishment (largest suggested orders, then order-up-to levels)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\torigin\tcycle demand\treorder point\tsafety stock\torder up to\tstock\torder\t")
	for _, p := range plans[:min(l.rows/2+1, len(plans))] {
		stock, qty := "-", "-"
		if p.Stock != nil {
			stock = fmt.Sprintf("%.0f+%.0f", p.Stock.OnHand, p.Stock.OnOrder)
		}
		if p.OrderQty != nil {
			qty = fmt.Sprintf("%.0f", *p.OrderQty)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", p.Series, p.Origin.Format("Jan 02"),
			p.Cycle.Mean, p.ReorderPoint, p.SafetyStock, p.OrderUpTo, stock, qty)
	}
	tw.Flush()
}

// actual returns the mean of a series' last seven closed buckets.
func (l *liveView) actual(id string) string {
	resp, err := l.proc.Series(id)
	if err != nil || len(resp.Buckets) == 0 {
		return "-"
	}
	b := resp.Buckets[max(len(resp.Buckets)-7, 0):]
	var sum float64
	for _, x := range b {
		sum += x.Qty
	}
	return fmt.Sprintf("%.2f", sum/float64(len(b)))
}

// metric sums a counter's values from the registry.
func (l *liveView) metric(name string) float64 {
	mfs, err := l.reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
