package backtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
	"github.com/trendstream/trendstream/window"
)

// NamePublished is the report entry of the forecasts trendstream run would
// publish.
const NamePublished = "published"

// Config configures a backtest. DefaultConfig is the one source of its
// defaults.
type Config struct {
	// Config configures the partitions' engines as in trendstream run:
	// every forecaster that runs is evaluated, and the published forecasts
	// are also reported as "published". Replays are of history, so the
	// defaults do not check event times against the wall clock and keep
	// every series in memory.
	pipeline.Config
	// Partitions splits a file source by key with the topic partitioner
	// (see Partition), one engine each, as a topic with that many
	// partitions would be processed, at least 1. Topic sources use the
	// topic's partitions.
	Partitions int
	// Origin is the fixed origin T: the forecasts made when its bucket
	// closes are scored on the buckets after it. Required.
	Origin time.Time
	// Rolling is the number of origins, ending at Origin, of the rolling
	// evaluation, at least 1.
	Rolling int
	// Mix makes the partitions' learners mix their weights as a live
	// group does (see pipeline.MixConfig), in lock step, so that results
	// stay deterministic. It has no effect with one partition.
	Mix pipeline.MixConfig
	// PublishTo, if set, receives the published forecasts of every close,
	// as trendstream run would send them. It must name its topic.
	PublishTo *kafka.Writer
	// Progress, if set, is called every few thousand records with the
	// records read so far and the time of the last: its event time for
	// files, its Kafka timestamp for topics.
	Progress func(events int64, eventTime time.Time)
	// Truth, when set, is the synthetic generator's truth that the input
	// was generated with: the report then has the trend classes'
	// precision and recall (see Decisions).
	Truth *Truth
	// PromoKnown, when set, is the input's promotion calendar, known in
	// advance: the engines estimate promotion lifts and publish their
	// forecasts under the calendar's plans (see pipeline.Promotions), and
	// the report scores promotion steps apart (see Promotions).
	PromoKnown *PromoCalendar
	// Logger receives warnings. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns pipeline.DefaultConfig without the checks of event
// times against the wall clock and the series cap, with decisions on, one
// partition, 112 rolling origins and pipeline.DefaultMixConfig. Origin is
// left for the caller.
func DefaultConfig() Config {
	c := Config{Config: pipeline.DefaultConfig(), Partitions: 1, Rolling: 112, Mix: pipeline.DefaultMixConfig()}
	c.Limits.MaxFuture, c.Limits.MaxPast = -1, -1
	c.MaxSeries = 0
	c.Decisions.On = true
	return c
}

func (c *Config) validate() error {
	switch {
	case c.Origin.IsZero():
		return errors.New("backtest: a backtest needs an Origin")
	case c.Partitions < 1:
		return fmt.Errorf("backtest: Partitions %d is below 1", c.Partitions)
	case c.Rolling < 1:
		return fmt.Errorf("backtest: Rolling %d is below 1", c.Rolling)
	case c.MaxSeries != 0:
		return fmt.Errorf("backtest: MaxSeries %d: a backtest keeps every series in memory", c.MaxSeries)
	case c.PublishTo != nil && c.PublishTo.Topic == "":
		return errors.New("backtest: PublishTo needs a Topic")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PromoKnown != nil {
		c.Promotions.On, c.Promotions.Plans = true, c.PromoKnown
	}
	if err := c.Mix.Validate(); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	return c.Config.Validate()
}

// Result is what a backtest measured.
type Result struct {
	// Fixed and Rolling hold the metrics of every model and of
	// "published".
	Fixed, Rolling map[string]model.Metrics
	// Models lists the forecasters that ran, in report order.
	Models []string
	// TrainSteps and TrainExamples total the learners' optimizer steps and
	// examples over all partitions.
	TrainSteps, TrainExamples int64
	// Origin is the start of the fixed origin's bucket.
	Origin time.Time
	// First and Last are the starts of the first and last closed buckets.
	First, Last time.Time
	// Buckets is the number of buckets from First to Last.
	Buckets int
	// Series is the number of series seen and Partitions the number of
	// partitions they were split into.
	Series, Partitions int
	// Records, Accepted, Duplicates and Late count input records.
	Records, Accepted, Duplicates, Late int64
	// DeadLetters counts rejected records by reason.
	DeadLetters map[pipeline.Reason]int64
	// Forecasts is the number of forecasts made (per model).
	Forecasts int64
	// Traces holds, for every series, its history before the fixed origin,
	// the actuals after it and every model's forecast made at it.
	Traces []Trace
	// ReplaySeconds is the wall time of reading, windowing and
	// forecasting; EvaluateSeconds that of merging the evaluations.
	ReplaySeconds, EvaluateSeconds float64
	// Decisions is what the decisions achieved, nil when they were off.
	Decisions *Decisions
	// Mixing totals what mixing the learners cost over all partitions.
	Mixing pipeline.MixStats
	// Promotions is what the known promotion calendar brought, nil
	// without Config.PromoKnown.
	Promotions *Promotions
}

// Trace is one series around the fixed origin.
type Trace struct {
	// Series is the series id.
	Series string
	// History holds the closed buckets up to and including the origin,
	// at most 56.
	History []float64
	// Actual holds the buckets after the origin, as far as the data goes.
	Actual []float64
	// Forecasts maps model names to the forecast made at the origin.
	Forecasts map[string]*model.Forecast
}

// Partition returns the partition of key among n partitions, as Kafka
// producers with the murmur2 partitioner (Java clients, kcat's
// murmur2_random, trendstream produce) assign it, so a file splits exactly
// as its topic would.
func Partition(key []byte, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, parts...)
}

// Run replays a file source through the same decoding, windowing and
// forecasting as trendstream run, split into cfg.Partitions partitions,
// and scores the forecasts as the backtest protocol defines.
func Run(ctx context.Context, cfg Config, src source.Source) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newReplay(cfg, cfg.Partitions)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, func(ctx context.Context, emit func(p int, rec pipeline.Record, t time.Time) error) error {
		offsets := make([]int64, cfg.Partitions)
		for {
			sr, err := src.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			p := Partition(sr.Key, cfg.Partitions)
			rec := pipeline.Record{Offset: offsets[p], Key: slices.Clone(sr.Key), Value: slices.Clone(sr.Value)}
			offsets[p]++
			if err := emit(p, rec, sr.Time); err != nil {
				return err
			}
		}
	})
}

// replay runs partitions through engines in parallel, each owned by one
// goroutine, and merges their evaluations.
type replay struct {
	cfg    Config
	parts  []*replayPartition
	events atomic.Int64
	mix    *lockstep // nil: the learners do not mix
}

// replayPartition is one partition's engine and its evaluating sink.
type replayPartition struct {
	r      *replay
	eng    *pipeline.Engine
	eval   *model.Evaluator
	origin int64
	ids    map[*window.Series]int
	traces map[int]*Trace
	row    []*model.Forecast // model forecasts plus published
	warm   int64             // buckets before the evaluated ones whose forecasts the selector scores
	first  int64
	last   int64
	dec    *decisionEval // nil when decisions are off
	promo  *promoEval    // nil without a promotion calendar

	enc   *pipeline.Encoder
	out   []kafka.Message
	arena []byte
}

func newReplay(cfg Config, partitions int) (*replay, error) {
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		return nil, err
	}
	origin := spec.Index(cfg.Origin)
	r := &replay{cfg: cfg}
	if cfg.Mix.Every > 0 && partitions > 1 {
		r.mix = newLockstep(partitions)
	}
	for p := range partitions {
		rp := &replayPartition{r: r, origin: origin, ids: map[*window.Series]int{}, traces: map[int]*Trace{},
			first: -1 << 62, last: -1 << 62}
		if cfg.Published == pipeline.NameAuto {
			// The selector scores forecasts up to four weeks later and
			// averages its scores over weeks, as it would have live: give
			// it forecasts from sixteen weeks before the evaluated origins.
			rp.warm = 112
		}
		if cfg.Decisions.On {
			// The replenishment calibration learns from the plans before
			// the evaluated ones.
			rp.warm = 56
			if rp.dec, err = newDecisionEval(&cfg.Decisions, cfg.Model.Horizon); err != nil {
				return nil, err
			}
		}
		if cfg.PromoKnown != nil {
			rp.promo = newPromoEval(cfg.PromoKnown, origin, cfg.Rolling)
		}
		rp.eng, err = pipeline.NewEngine(cfg.Config, rp)
		if err != nil {
			return nil, err
		}
		if r.mix != nil {
			if err := rp.eng.SetMixer(r.mix, int32(p), cfg.Mix); err != nil {
				return nil, err
			}
		}
		names := append(slices.Clone(rp.eng.Models()), NamePublished)
		rp.eval, err = model.NewEvaluator(model.EvalConfig{Models: names, Horizon: cfg.Model.Horizon,
			Levels: cfg.Model.Levels, Origin: origin, Rolling: cfg.Rolling})
		if err != nil {
			return nil, err
		}
		if cfg.PublishTo != nil {
			if rp.enc, err = pipeline.NewEncoder(spec, cfg.Model.Levels, cfg.FlatPct); err != nil {
				return nil, err
			}
		}
		rp.eng.BeginBatch()
		r.parts = append(r.parts, rp)
	}
	return r, nil
}

// run feeds the records that read emits to their partitions' engines,
// closes the buckets up to the last event time, and scores.
func (r *replay) run(ctx context.Context, read func(context.Context, func(int, pipeline.Record, time.Time) error) error) (*Result, error) {
	started := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chans := make([]chan pipeline.Record, len(r.parts))
	queues := make([]*queue, len(r.parts))
	var wg sync.WaitGroup
	if r.mix != nil {
		stop := context.AfterFunc(ctx, func() { r.mix.stop(errors.Join(errStopped, context.Cause(ctx))) })
		defer stop()
	}
	for i, rp := range r.parts {
		if r.mix != nil {
			queues[i] = newQueue()
			wg.Go(func() {
				defer r.mix.drain(i)
				var buf []pipeline.Record
				for {
					recs, ok := queues[i].take(buf)
					if !ok {
						return
					}
					for j := range recs {
						if err := rp.process(&recs[j]); err != nil {
							cancel(err)
							return
						}
					}
					buf = recs
				}
			})
			continue
		}
		chans[i] = make(chan pipeline.Record, 4096)
		wg.Go(func() {
			for rec := range chans[i] {
				if err := rp.process(&rec); err != nil {
					cancel(err)
					for range chans[i] {
					}
					return
				}
			}
		})
	}
	var mu sync.Mutex
	emit := func(p int, rec pipeline.Record, t time.Time) error {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		if queues[p] != nil {
			queues[p].push(rec)
		} else {
			select {
			case chans[p] <- rec:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if n := r.events.Add(1); r.cfg.Progress != nil && n%4096 == 0 {
			mu.Lock()
			r.cfg.Progress(n, t)
			mu.Unlock()
		}
		return nil
	}
	readErr := read(ctx, emit)
	for i, ch := range chans {
		if queues[i] != nil {
			queues[i].close()
		} else {
			close(ch)
		}
	}
	wg.Wait()
	if err := errors.Join(readErr, context.Cause(ctx)); err != nil {
		return nil, err
	}
	// Close every partition's buckets up to the bucket of the newest event
	// time of any partition, so the last days are observed as actuals.
	var end time.Time
	for _, rp := range r.parts {
		if wm, ok := rp.eng.Watermark(); ok && wm.Add(rp.eng.Lateness()).After(end) {
			end = wm.Add(rp.eng.Lateness())
		}
	}
	for _, rp := range r.parts {
		wg.Go(func() {
			if err := rp.finish(end); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	replayed := time.Since(started)
	return r.result(replayed)
}

// process runs one record through the partition's engine.
func (rp *replayPartition) process(rec *pipeline.Record) error {
	if err := rp.eng.Process(rec); err != nil {
		return err
	}
	if rp.eng.Counters().Records%8192 == 0 {
		rp.eng.Release()
		rp.eng.BeginBatch()
	}
	return rp.flushOutputs(false)
}

func (rp *replayPartition) finish(end time.Time) error {
	if err := rp.eng.Flush(end); err != nil {
		return err
	}
	rp.eval.Finish()
	if rp.promo != nil {
		rp.promo.finish()
	}
	return rp.flushOutputs(true)
}

// DeadLetter implements pipeline.Sink: the engine counts dead letters.
func (rp *replayPartition) DeadLetter(*pipeline.Record, pipeline.Reason, string) error { return nil }

// Wants implements pipeline.Sink: forecasts are needed at evaluated
// origins and in the selector's warm-up before them, and at every close
// when publishing.
func (rp *replayPartition) Wants(bucket int64) bool {
	return rp.eval.Evaluated(bucket) || rp.eval.Evaluated(bucket+rp.warm) || rp.r.cfg.PublishTo != nil
}

// Closed implements pipeline.Sink: it feeds the evaluator, keeps the
// traces and queues the published forecast when publishing.
func (rp *replayPartition) Closed(c *pipeline.Close) error {
	s, bucket := c.Series, c.Bucket
	id, ok := rp.ids[s]
	if !ok {
		id = len(rp.ids)
		rp.ids[s] = id
	}
	b, _ := s.Last()
	rp.eval.Observe(id, b.Qty)
	if rp.first == -1<<62 || bucket < rp.first {
		rp.first = bucket
	}
	rp.last = max(rp.last, bucket)
	if tr := rp.traces[id]; tr != nil && bucket > rp.origin && len(tr.Actual) < rp.r.cfg.Model.Horizon {
		tr.Actual = append(tr.Actual, b.Qty)
	}
	if rp.dec != nil {
		if err := rp.dec.closed(c, rp.eval.Evaluated(bucket)); err != nil {
			return err
		}
	}
	if rp.promo != nil {
		rp.promo.closed(c)
	}
	if c.Forecasts == nil {
		return nil
	}
	rp.row = append(append(rp.row[:0], c.Forecasts...), c.PublishedForecast())
	rp.eval.Forecast(id, bucket, rp.row)
	if bucket == rp.origin {
		names := rp.eng.Models()
		tr := &Trace{Series: s.ID(), History: s.QtyTo(nil, 56), Forecasts: map[string]*model.Forecast{}}
		for i, f := range rp.row {
			name := NamePublished
			if i < len(names) {
				name = names[i]
			}
			fc := &model.Forecast{}
			fc.CopyFrom(f)
			tr.Forecasts[name] = fc
		}
		rp.traces[id] = tr
	}
	if rp.enc != nil {
		start := len(rp.arena)
		rp.arena = rp.enc.Append(rp.arena, c, c.Version())
		rp.out = append(rp.out, kafka.Message{Key: []byte(s.ID()), Value: rp.arena[start:len(rp.arena):len(rp.arena)]})
	}
	return nil
}

// flushOutputs writes published forecasts in batches.
func (rp *replayPartition) flushOutputs(all bool) error {
	if len(rp.out) == 0 || (!all && len(rp.out) < 2000) {
		return nil
	}
	if err := rp.r.cfg.PublishTo.WriteMessages(context.Background(), rp.out...); err != nil {
		return fmt.Errorf("backtest: publishing forecasts: %w", err)
	}
	clear(rp.out)
	rp.out, rp.arena = rp.out[:0], rp.arena[:0]
	return nil
}

// result merges the partitions' evaluations and counters.
func (r *replay) result(replayed time.Duration) (*Result, error) {
	started := time.Now()
	spec, _ := window.NewSpec(r.cfg.Window.Width, r.cfg.Window.Location)
	res := &Result{DeadLetters: map[pipeline.Reason]int64{}, ReplaySeconds: replayed.Seconds(), Partitions: len(r.parts)}
	eval := r.parts[0].eval
	first, last := int64(1<<62), int64(-1<<62)
	for i, rp := range r.parts {
		if i > 0 {
			if err := eval.Merge(rp.eval); err != nil {
				return nil, err
			}
		}
		c, learned := rp.eng.Counters(), rp.eng.Learned()
		res.TrainSteps += int64(learned.Steps)
		res.TrainExamples += int64(learned.Examples)
		res.Records += c.Records
		res.Accepted += c.Accepted
		res.Duplicates += c.Dupes
		res.Late += c.Late
		res.Forecasts += c.Forecasts
		for reason, n := range c.DeadLetters {
			res.DeadLetters[reason] += n
		}
		res.Series += rp.eng.Series()
		mx := rp.eng.Mixing()
		res.Mixing.Rounds += mx.Rounds
		res.Mixing.Published += mx.Published
		res.Mixing.Received += mx.Received
		res.Mixing.Seconds += mx.Seconds
		res.Mixing.WaitSeconds += mx.WaitSeconds
		if rp.last > -1<<62 {
			first, last = min(first, rp.first), max(last, rp.last)
		}
		for _, tr := range rp.traces {
			res.Traces = append(res.Traces, *tr)
		}
	}
	slices.SortFunc(res.Traces, func(a, b Trace) int { return strings.Compare(a.Series, b.Series) })
	res.Fixed, res.Rolling = eval.Result()
	res.Models = r.parts[0].eng.Models()
	res.Origin = spec.Start(r.parts[0].origin)
	if last >= first {
		res.First, res.Last, res.Buckets = spec.Start(first), spec.Start(last), int(last-first+1)
	}
	res.Decisions = decisionsResult(&r.cfg, r.parts, spec)
	res.Promotions = promoResult(r.parts)
	res.EvaluateSeconds = time.Since(started).Seconds()
	return res, nil
}
