package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// task owns one assigned input partition for one consumer-group
// generation: it reads the partition from the offset stored in Badger,
// runs records through its engine, writes forecasts and dead letters, and
// commits state and the next offset in one Badger transaction per batch.
// It is its engine's pipeline.Sink: forecasts and dead letters become
// Kafka messages, and each published forecast the series' latest in the
// commit.
type task struct {
	proc      *Processor
	partition int32
	label     string
	log       *slog.Logger
	eng       *pipeline.Engine
	enc       *pipeline.Encoder

	recs    []pipeline.Record
	out     []kafka.Message
	arena   []byte // forecast payloads referenced by out
	batch   state.Batch
	clmsgs  []kafka.Message
	key     []byte
	next    int64 // next input offset committed to Badger, -1 before any
	skipped int   // learner steps skipped, as last reported
}

func newTask(p *Processor, partition int32, gen int32) (*task, error) {
	t := &task{
		proc:      p,
		partition: partition,
		label:     strconv.Itoa(int(partition)),
		log:       p.cfg.Logger.With("partition", partition, "generation", gen),
	}
	var err error
	if t.eng, err = pipeline.NewEngine(p.cfg.Config, t); err != nil {
		return nil, err
	}
	if t.enc, err = pipeline.NewEncoder(t.eng.Spec(), p.cfg.Model.Levels, p.cfg.FlatPct); err != nil {
		return nil, err
	}
	return t, nil
}

// errAbandoned reports a batch whose outputs could not be written before
// the shutdown grace ran out; it was not committed and will be replayed.
var errAbandoned = errors.New("stream: batch abandoned at shutdown")

// run processes the partition until ctx, the generation's context, ends,
// then finishes its batch, commits and returns. A non-nil error is fatal
// for the processor: state that cannot be read or written.
func (t *task) run(ctx context.Context) error {
	m := t.proc.m
	start := time.Now()
	unlock := t.proc.lockPartition(t.partition)
	defer unlock()
	if err := t.restore(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	next, err := t.eng.Load(t.proc.db, t.partition)
	if err != nil {
		return fmt.Errorf("stream: loading partition %d: %w", t.partition, err)
	}
	m.loadSeconds.Observe(time.Since(start).Seconds())
	t.next = next
	from := next
	if next < 0 {
		from = kafka.FirstOffset
		if t.proc.cfg.StartOffset == StartLatest {
			from = kafka.LastOffset
		}
	}
	t.log.Info("partition loaded", "series", t.eng.Series(), "dedup_ids", t.eng.DedupIDs(),
		"offset", next, "seconds", time.Since(start).Seconds())

	cfg := &t.proc.cfg
	f := newFetcher(&cfg.Connection, cfg.InputTopic, int(t.partition), cfg.FetchMaxBytes, cfg.FetchMaxWait, from, t.log)
	defer f.close()
	t.proc.setOwned(t.partition, true)
	defer t.proc.setOwned(t.partition, false)
	defer m.forget(t.partition)

	// Outputs of the last batch must still be written after the
	// generation ends, within the shutdown grace.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(t.proc.cfg.ShutdownGrace, cancel) })
	defer stop()

	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		var ferr error
		markers := f.controls
		t.recs, ferr = f.fetch(ctx, t.recs[:0], cfg.BatchSize, cfg.BatchWait)
		m.markers.Add(float64(f.controls - markers))
		if len(t.recs) > 0 {
			// The batch after which the generation has ended is the
			// partition's last here: it carries a model checkpoint.
			err := t.processBatch(wctx, ctx.Err() != nil)
			if errors.Is(err, errAbandoned) {
				t.log.Warn("stopping without committing the last batch; it will be replayed", "records", len(t.recs))
				return nil
			}
			if err != nil {
				return err
			}
			m.lag.WithLabelValues(t.label).Set(float64(f.lag()))
		}
		if ctx.Err() != nil {
			if len(t.recs) == 0 && t.eng.Unsaved() {
				// No last batch carried the checkpoint: commit it alone.
				t.batch.Reset()
				if err := t.commit(wctx, t.next, t.next, true); err != nil && !errors.Is(err, errAbandoned) {
					return err
				}
			}
			t.log.Info("partition released", "next_offset", t.next)
			return nil
		}
		if ferr != nil {
			m.fetchErrs.Inc()
			level := slog.LevelWarn
			if permanent(ferr) {
				// Retried all the same, but it will not go away by itself.
				level = slog.LevelError
			}
			t.log.Log(context.Background(), level, "fetching records", "err", ferr)
			if !backoff.wait(ctx) {
				return nil
			}
			continue
		}
		backoff.reset()
	}
}

// restore brings the partition's local state up to the changelog, retrying
// with backoff while Kafka is unreachable, until ctx ends.
func (t *task) restore(ctx context.Context) error {
	cl := t.proc.changelog
	if cl == nil {
		return nil
	}
	backoff := newBackoff(200*time.Millisecond, 10*time.Second)
	for {
		local, err := pipeline.LocalOffset(t.proc.db, t.partition)
		if err != nil {
			return fmt.Errorf("stream: reading partition %d's commit point: %w", t.partition, err)
		}
		_, err = cl.restore(ctx, t.proc.db, t.partition, local, false)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Error("restoring from the changelog", "err", err)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

// processBatch runs the batch through the engine, writes its outputs and
// commits its state with the next offset; the last batch of the partition
// before it is released checkpoints the models.
func (t *task) processBatch(wctx context.Context, last bool) error {
	m := t.proc.m
	t.batch.Reset()
	t.eng.BeginBatch()
	closes := t.eng.Counters().Closes
	started := time.Now()
	for i := range t.recs {
		if err := t.eng.Process(&t.recs[i]); err != nil {
			return fmt.Errorf("stream: partition %d offset %d: %w", t.partition, t.recs[i].Offset, err)
		}
	}
	if n := t.eng.Counters().Closes - closes; n > 0 {
		m.closeSeconds.Observe(time.Since(started).Seconds() / float64(n))
	}
	if err := t.writeOutputs(wctx); err != nil {
		return err
	}

	return t.commit(wctx, t.recs[0].Offset, t.recs[len(t.recs)-1].Offset+1, last)
}

// commit writes the engine's state changes with the next input offset to
// the changelog and then in one transaction to Badger; last forces a model
// checkpoint. The batch's records start at first.
func (t *task) commit(wctx context.Context, first, next int64, last bool) error {
	m := t.proc.m
	if err := t.eng.AppendState(&t.batch, t.partition, first, next, last); err != nil {
		return err
	}
	if cl := t.proc.changelog; cl != nil {
		var marker kafka.Message
		t.clmsgs, marker = cl.messages(t.clmsgs[:0], t.partition, &t.batch)
		err := t.retry(wctx, "writing the changelog", len(t.clmsgs)+1, func(ctx context.Context) error {
			_, err := cl.write(ctx, t.partition, t.clmsgs, marker)
			return err
		})
		clear(t.clmsgs)
		if err != nil {
			return err
		}
	}
	started := time.Now()
	st, err := t.proc.db.Commit(&t.batch)
	if err != nil {
		return fmt.Errorf("stream: committing partition %d at offset %d: %w", t.partition, next, err)
	}
	m.commitSeconds.Observe(time.Since(started).Seconds())
	if st.Transactions > 1 {
		t.log.Info("batch committed in several transactions", "transactions", st.Transactions, "bytes", t.batch.Bytes())
	}
	t.next = next
	t.proc.committed(t.partition, next)

	m.batches.Inc()
	m.add(t.eng.Counters())
	skipped := t.eng.Learned().Skipped
	if n := skipped - t.skipped; n > 0 {
		t.log.Warn("a learner skipped training steps with a non-finite loss or gradient; the model is unchanged by them",
			"skipped", n, "skipped_total", skipped)
	}
	m.addModels(t.eng.ModelStats(), skipped-t.skipped)
	t.skipped = skipped
	m.offset.WithLabelValues(t.label).Set(float64(next))
	m.series.WithLabelValues(t.label).Set(float64(t.eng.Series()))
	m.dedupIDs.WithLabelValues(t.label).Set(float64(t.eng.DedupIDs()))
	if wm, ok := t.eng.Watermark(); ok {
		m.watermark.WithLabelValues(t.label).Set(float64(wm.UnixNano()) / 1e9)
	}
	return nil
}

// writeOutputs writes the batch's forecasts and dead letters, retrying
// with backoff until they are written or wctx ends.
func (t *task) writeOutputs(wctx context.Context) error {
	if len(t.out) == 0 {
		return nil
	}
	started := time.Now()
	err := t.retry(wctx, "writing outputs", len(t.out), func(ctx context.Context) error {
		return t.proc.writer.WriteMessages(ctx, t.out...)
	})
	if err != nil {
		return err
	}
	t.proc.m.writeSeconds.Observe(time.Since(started).Seconds())
	clear(t.out)
	t.out = t.out[:0]
	t.arena = t.arena[:0]
	return nil
}

// retry calls write until it succeeds, backing off between attempts; it
// returns errAbandoned when wctx ends first.
func (t *task) retry(wctx context.Context, what string, n int, write func(context.Context) error) error {
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for {
		err := write(wctx)
		if err == nil {
			return nil
		}
		t.proc.m.outputErrs.Inc()
		if wctx.Err() != nil {
			return errAbandoned
		}
		t.log.Warn(what, "messages", n, "err", writeError(err))
		if !backoff.wait(wctx) {
			return errAbandoned
		}
	}
}

// writeError shortens kafka-go's per-message write errors, which repeat
// one error for every message of a failed batch, to a count and the first
// distinct errors.
func writeError(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	var distinct []error
	for _, e := range we {
		if e != nil && len(distinct) < 3 && !slices.ContainsFunc(distinct, func(d error) bool { return d.Error() == e.Error() }) {
			distinct = append(distinct, e)
		}
	}
	return fmt.Errorf("%d of %d messages failed: %w", we.Count(), len(we), errors.Join(distinct...))
}

// DeadLetter implements pipeline.Sink: the original bytes go to the
// dead-letter topic with the reason and origin in headers.
func (t *task) DeadLetter(rec *pipeline.Record, reason pipeline.Reason, detail string) error {
	t.out = append(t.out, kafka.Message{
		Topic: t.proc.cfg.DLQTopic,
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kafka.Header{
			{Key: "reason", Value: []byte(reason)},
			{Key: "detail", Value: []byte(detail)},
			{Key: "source", Value: fmt.Appendf(nil, "%s/%d/%d", t.proc.cfg.InputTopic, t.partition, rec.Offset)},
		},
	})
	return nil
}

// Wants implements pipeline.Sink: live processing publishes every close.
func (t *task) Wants(int64) bool { return true }

// Closed implements pipeline.Sink: the published forecast goes to the
// output topic and, as the series' latest, into the state batch.
func (t *task) Closed(c *pipeline.Close) error {
	start := len(t.arena)
	t.arena = t.enc.Append(t.arena, c)
	value := t.arena[start:len(t.arena):len(t.arena)]
	id := c.Series.ID()
	t.out = append(t.out, kafka.Message{Topic: t.proc.cfg.OutputTopic, Key: []byte(id), Value: value})
	t.key = pipeline.ForecastKey(t.key[:0], t.partition, id)
	t.batch.Set(t.key, value)
	return nil
}

// backoff sleeps exponentially longer between retries.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max, cur: min} }

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps for the current delay and doubles it; it returns false if
// ctx ends first.
func (b *backoff) wait(ctx context.Context) bool {
	timer := time.NewTimer(b.cur)
	defer timer.Stop()
	b.cur = min(2*b.cur, b.max)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
