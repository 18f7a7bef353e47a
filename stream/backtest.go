package stream

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
	"github.com/trendstream/trendstream/stream/source"
	"github.com/trendstream/trendstream/window"
)

// NamePublished is the report entry of the forecasts trendstream run would
// publish.
const NamePublished = "published"

// BacktestConfig configures a backtest. The zero value of each field but
// Origin means its default.
type BacktestConfig struct {
	// Window configures bucketing; Width defaults to daily, Lateness to
	// one hour and History to what the forecasters need, as in Config.
	Window window.Config
	// Forecasting configures the forecasters as in Config: every
	// forecaster that runs is evaluated, and the published forecasts are
	// also reported as "published".
	Forecasting
	// Partitions splits a file source by key with the topic partitioner
	// (see Partition), one engine each, as a topic with that many
	// partitions would be processed. The default is 1. Topic sources use
	// the topic's partitions.
	Partitions int
	// Origin is the fixed origin T: the forecasts made when its bucket
	// closes are scored on the buckets after it. Required.
	Origin time.Time
	// Rolling is the number of origins, ending at Origin, of the rolling
	// evaluation. The default is 112.
	Rolling int
	// Limits bound accepted events. MaxFuture defaults to disabled: replays
	// are of history.
	Limits Limits
	// DedupHorizon is as in Config. The default is 48 hours.
	DedupHorizon time.Duration
	// PublishTo, if set, receives the published forecasts of every close,
	// as trendstream run would send them. It must name its topic.
	PublishTo *kafka.Writer
	// Progress, if set, is called every few thousand records with the
	// records read so far and the time of the last: its event time for
	// files, its Kafka timestamp for topics.
	Progress func(events int64, eventTime time.Time)
	// Logger receives warnings. The default discards them.
	Logger *slog.Logger
}

func (c *BacktestConfig) setDefaults() error {
	if err := setPipelineDefaults(&c.Window, &c.Forecasting); err != nil {
		return err
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Rolling == 0 {
		c.Rolling = 112
	}
	if c.Limits.MaxFuture == 0 {
		c.Limits.MaxFuture = -1
	}
	if c.DedupHorizon == 0 {
		c.DedupHorizon = 48 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Origin.IsZero():
		return errors.New("stream: a backtest needs an Origin")
	case c.Partitions < 1 || c.Rolling < 1:
		return fmt.Errorf("stream: Partitions %d, Rolling %d", c.Partitions, c.Rolling)
	case c.PublishTo != nil && c.PublishTo.Topic == "":
		return errors.New("stream: PublishTo needs a Topic")
	}
	if err := c.Limits.setDefaults(); err != nil {
		return err
	}
	_, err := window.NewPartition(c.Window)
	return err
}

// BacktestResult is what a backtest measured.
type BacktestResult struct {
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
	// Series is the number of series seen.
	Series int
	// Records, Accepted, Duplicates and Late count input records.
	Records, Accepted, Duplicates, Late int64
	// DeadLetters counts rejected records by reason.
	DeadLetters map[Reason]int64
	// Forecasts is the number of forecasts made (per model).
	Forecasts int64
	// Traces holds, for every series, its history before the fixed origin,
	// the actuals after it and every model's forecast made at it.
	Traces []Trace
	// ReplaySeconds is the wall time of reading, windowing and
	// forecasting; EvaluateSeconds that of merging the evaluations.
	ReplaySeconds, EvaluateSeconds float64
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

// Backtest replays a file source through the same decoding, windowing and
// forecasting as trendstream run, split into cfg.Partitions partitions,
// and scores the forecasts as the backtest protocol defines.
func Backtest(ctx context.Context, cfg BacktestConfig, src source.Source) (*BacktestResult, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r, err := newReplay(cfg, cfg.Partitions)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, func(ctx context.Context, emit func(p int, rec Record, t time.Time) error) error {
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
			rec := Record{Offset: offsets[p], Key: slices.Clone(sr.Key), Value: slices.Clone(sr.Value)}
			offsets[p]++
			if err := emit(p, rec, sr.Time); err != nil {
				return err
			}
		}
	})
}

// TopicRange selects the records of a topic a backtest replays by their
// Kafka timestamps, as kcat's -o s@ and -o e@ do. A zero From starts at the
// first retained record, a zero To ends at the end of each partition at
// the start of the replay.
type TopicRange struct {
	// From is the earliest record timestamp replayed.
	From time.Time
	// To is the timestamp before which the replay stops.
	To time.Time
}

// BacktestTopic replays a topic, each partition from its first retained
// record (or the first one at or after rng.From) to its end at the start of
// the replay (or its last record before rng.To), each partition through its
// own engine, and scores the forecasts like Backtest. It reads with plain
// partition readers: it joins no consumer group and commits no offset, so
// live consumers are unaffected, and it keeps its state in memory.
func BacktestTopic(ctx context.Context, cfg BacktestConfig, kc Connection, topic string, rng TopicRange) (*BacktestResult, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if !rng.From.IsZero() && !rng.To.IsZero() && !rng.From.Before(rng.To) {
		return nil, fmt.Errorf("stream: replay range from %s to %s is empty", rng.From.Format(time.RFC3339), rng.To.Format(time.RFC3339))
	}
	ends, err := topicEnds(ctx, kc, topic, rng)
	if err != nil {
		return nil, err
	}
	r, err := newReplay(cfg, len(ends))
	if err != nil {
		return nil, err
	}
	return r.run(ctx, func(ctx context.Context, emit func(p int, rec Record, t time.Time) error) error {
		var wg sync.WaitGroup
		errs := make([]error, len(ends))
		for p, end := range ends {
			if end.last <= end.first {
				continue
			}
			wg.Go(func() {
				rd := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.dialer(), Topic: topic,
					Partition: p, MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond})
				defer rd.Close()
				if err := rd.SetOffset(end.first); err != nil {
					errs[p] = err
					return
				}
				for {
					m, err := rd.FetchMessage(ctx)
					if err != nil {
						errs[p] = err
						return
					}
					if !controlRecord(&m) { // transaction markers are no events
						if err := emit(p, Record{Offset: m.Offset, Key: m.Key, Value: m.Value}, m.Time); err != nil {
							errs[p] = err
							return
						}
					}
					if m.Offset+1 >= end.last {
						return
					}
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

type offsetRange struct{ first, last int64 }

// topicEnds returns each partition's first and end offsets, narrowed to
// the records with timestamps in rng.
func topicEnds(ctx context.Context, kc Connection, topic string, rng TopicRange) ([]offsetRange, error) {
	conn, err := kc.dial(ctx)
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("stream: reading partitions of %s: %w", topic, err)
	}
	ends := make([]offsetRange, len(parts))
	for _, p := range parts {
		c, err := kc.dialer().DialLeader(ctx, "tcp", kc.Brokers[0], topic, p.ID)
		if err != nil {
			return nil, fmt.Errorf("stream: connecting to the leader of %s/%d: %w", topic, p.ID, err)
		}
		first, last, err := c.ReadOffsets()
		if err == nil {
			first, last, err = narrow(c, first, last, rng)
		}
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("stream: reading offsets of %s/%d: %w", topic, p.ID, err)
		}
		ends[p.ID] = offsetRange{first, last}
	}
	return ends, nil
}

// narrow moves a partition's offset range [first, last) to the records
// with timestamps in rng. A broker answers a timestamp lookup with the
// first offset whose record is at least that recent, or -1 when there is
// none.
func narrow(c *kafka.Conn, first, last int64, rng TopicRange) (int64, int64, error) {
	at := func(t time.Time) (int64, error) {
		o, err := c.ReadOffset(t)
		if err != nil || o < 0 {
			return last, err
		}
		return min(max(o, first), last), nil
	}
	var err error
	if !rng.To.IsZero() {
		if last, err = at(rng.To); err != nil {
			return 0, 0, err
		}
	}
	if !rng.From.IsZero() {
		if first, err = at(rng.From); err != nil {
			return 0, 0, err
		}
	}
	return first, max(first, last), nil
}

// replay runs partitions through engines in parallel, each owned by one
// goroutine, and merges their evaluations.
type replay struct {
	cfg    BacktestConfig
	parts  []*replayPartition
	events atomic.Int64
}

// replayPartition is one partition's engine and its evaluating sink.
type replayPartition struct {
	r      *replay
	eng    *engine
	eval   *model.Evaluator
	origin int64
	ids    map[*window.Series]int
	traces map[int]*Trace
	row    []*model.Forecast // model forecasts plus published
	warm   int64             // buckets before the evaluated ones whose forecasts the selector scores
	first  int64
	last   int64

	enc   *forecastEncoder
	meta  forecastMeta
	out   []kafka.Message
	arena []byte
}

func newReplay(cfg BacktestConfig, partitions int) (*replay, error) {
	spec, err := window.NewSpec(cfg.Window.Width, cfg.Window.Location)
	if err != nil {
		return nil, err
	}
	origin := spec.Index(cfg.Origin)
	r := &replay{cfg: cfg}
	for range partitions {
		rp := &replayPartition{r: r, origin: origin, ids: map[*window.Series]int{}, traces: map[int]*Trace{},
			first: -1 << 62, last: -1 << 62}
		if cfg.Published == NameAuto {
			// The selector scores each forecast a week later: give it
			// forecasts from eight weeks before the evaluated origins.
			rp.warm = 56
		}
		rp.eng, err = newEngine(engineConfig{
			window: cfg.Window, limits: cfg.Limits, late: LateDeadLetter, dedup: cfg.DedupHorizon,
			forecast: &r.cfg.Forecasting, clock: time.Now,
		}, rp)
		if err != nil {
			return nil, err
		}
		names := append(slices.Clone(rp.eng.models.names), NamePublished)
		rp.eval, err = model.NewEvaluator(model.EvalConfig{Models: names, Horizon: cfg.Model.Horizon,
			Levels: cfg.Model.Levels, Origin: origin, Rolling: cfg.Rolling})
		if err != nil {
			return nil, err
		}
		if cfg.PublishTo != nil {
			if rp.enc, err = newForecastEncoder(spec, cfg.Model.Levels, 5); err != nil {
				return nil, err
			}
		}
		rp.eng.beginBatch()
		r.parts = append(r.parts, rp)
	}
	return r, nil
}

// run feeds the records that read emits to their partitions' engines,
// closes the buckets up to the last event time, and scores.
func (r *replay) run(ctx context.Context, read func(context.Context, func(int, Record, time.Time) error) error) (*BacktestResult, error) {
	started := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chans := make([]chan Record, len(r.parts))
	var wg sync.WaitGroup
	for i, rp := range r.parts {
		chans[i] = make(chan Record, 4096)
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
	emit := func(p int, rec Record, t time.Time) error {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		select {
		case chans[p] <- rec:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if n := r.events.Add(1); r.cfg.Progress != nil && n%4096 == 0 {
			mu.Lock()
			r.cfg.Progress(n, t)
			mu.Unlock()
		}
		return nil
	}
	readErr := read(ctx, emit)
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	if err := errors.Join(readErr, context.Cause(ctx)); err != nil {
		return nil, err
	}
	// Close every partition's buckets up to the bucket of the newest event
	// time of any partition, so the last days are observed as actuals.
	var end time.Time
	for _, rp := range r.parts {
		if wm, ok := rp.eng.part.Watermark(); ok && wm.Add(rp.eng.part.Config().Lateness).After(end) {
			end = wm.Add(rp.eng.part.Config().Lateness)
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
func (rp *replayPartition) process(rec *Record) error {
	if err := rp.eng.process(rec); err != nil {
		return err
	}
	if rp.eng.cnt.records%8192 == 0 {
		rp.eng.release()
	}
	return rp.flushOutputs(false)
}

func (rp *replayPartition) finish(end time.Time) error {
	if err := rp.eng.flush(end); err != nil {
		return err
	}
	rp.eval.Finish()
	return rp.flushOutputs(true)
}

// deadLetter implements sink: the engine counts dead letters.
func (rp *replayPartition) deadLetter(*Record, Reason, string) error { return nil }

// wants implements sink: forecasts are needed at evaluated origins and in
// the selector's warm-up before them, and at every close when publishing.
func (rp *replayPartition) wants(bucket int64) bool {
	return rp.eval.Evaluated(bucket) || rp.eval.Evaluated(bucket+rp.warm) || rp.r.cfg.PublishTo != nil
}

// closed implements sink: it feeds the evaluator and keeps the traces.
func (rp *replayPartition) closed(bucket int64, s *window.Series, fcs []*model.Forecast, pub int) error {
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
	if fcs == nil {
		return nil
	}
	rp.row = append(append(rp.row[:0], fcs...), fcs[pub])
	rp.eval.Forecast(id, bucket, rp.row)
	names := rp.eng.models.names
	if bucket == rp.origin {
		tr := &Trace{Series: s.ID(), History: s.QtyTo(nil, 56), Forecasts: map[string]*model.Forecast{}}
		for i, f := range rp.row {
			name := NamePublished
			if i < len(names) {
				name = names[i]
			}
			c := &model.Forecast{}
			c.CopyFrom(f)
			tr.Forecasts[name] = c
		}
		rp.traces[id] = tr
	}
	if rp.enc != nil {
		rp.meta.bucket = bucket
		rp.meta.generatedAt = time.Now()
		rp.meta.watermark, _ = rp.eng.part.Watermark()
		rp.meta.model, rp.meta.modelVersion = names[pub], rp.eng.models.version(pub)
		start := len(rp.arena)
		rp.arena = rp.enc.append(rp.arena, s, fcs[pub], &rp.meta)
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
		return fmt.Errorf("stream: publishing backtest forecasts: %w", err)
	}
	clear(rp.out)
	rp.out, rp.arena = rp.out[:0], rp.arena[:0]
	return nil
}

// result merges the partitions' evaluations and counters.
func (r *replay) result(replayed time.Duration) (*BacktestResult, error) {
	started := time.Now()
	spec, _ := window.NewSpec(r.cfg.Window.Width, r.cfg.Window.Location)
	res := &BacktestResult{DeadLetters: map[Reason]int64{}, ReplaySeconds: replayed.Seconds()}
	eval := r.parts[0].eval
	first, last := int64(1<<62), int64(-1<<62)
	for i, rp := range r.parts {
		if i > 0 {
			if err := eval.Merge(rp.eval); err != nil {
				return nil, err
			}
		}
		c := &rp.eng.cnt
		res.TrainSteps += int64(rp.eng.models.learnAll.Steps)
		res.TrainExamples += int64(rp.eng.models.learnAll.Examples)
		res.Records += c.records
		res.Accepted += c.accepted
		res.Duplicates += c.dupes
		res.Late += c.late
		res.Forecasts += c.forecasts
		for reason, n := range c.dlq {
			res.DeadLetters[reason] += n
		}
		res.Series += rp.eng.part.Len()
		if rp.last > -1<<62 {
			first, last = min(first, rp.first), max(last, rp.last)
		}
		for _, tr := range rp.traces {
			res.Traces = append(res.Traces, *tr)
		}
	}
	slices.SortFunc(res.Traces, func(a, b Trace) int { return strings.Compare(a.Series, b.Series) })
	res.Fixed, res.Rolling = eval.Result()
	res.Models = r.parts[0].eng.models.names
	res.Origin = spec.Start(r.parts[0].origin)
	if last >= first {
		res.First, res.Last, res.Buckets = spec.Start(first), spec.Start(last), int(last-first+1)
	}
	res.EvaluateSeconds = time.Since(started).Seconds()
	return res, nil
}
