package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	gen       owner
	mixer     *taskMixer // nil when the learners do not mix
	// token stamps the task's changelog records: its generation, raised
	// above the changelog's highest when the group's generations started
	// over (see changelog).
	token int64

	recs  []pipeline.Record
	out   []kafka.Message
	arena []byte // forecast payloads referenced by out
	// wctx is the context of the batch's output writes, for the flushes
	// of Closed.
	wctx context.Context
	// latest holds the compact form (see pipeline.Encoder.AppendCompact)
	// of the last forecast of each series published since the last
	// commit, which the commit stores once, however many closes the
	// batch spanned: compact holds the bytes, latestIdx finds a series'
	// entry.
	latest    []latestForecast
	latestIdx map[string]int
	compact   []byte
	batch     state.Batch
	clmsgs    []kafka.Message
	key       []byte
	next      int64 // next input offset committed to Badger, -1 before any
	skipped   int   // learner steps skipped, as last reported

	// inputAt is when, by the engine's clock, input last arrived, and
	// behind how far its newest event time then was behind the clock
	// (see idle).
	inputAt time.Time
	behind  time.Duration
}

// latestForecast is a series' last forecast of a batch: compact[from:to].
type latestForecast struct {
	id       string
	from, to int
}

// owner is the consumer-group generation a task's partition is assigned
// in. *kafka.Generation implements it: the coordinator refuses an offset
// commit from a member that is not in the group's current generation.
type owner interface {
	CommitOffsets(offsets map[string]map[int]int64) error
}

func newTask(p *Processor, partition int32, gen owner, id int32) (*task, error) {
	t := &task{
		proc:      p,
		partition: partition,
		label:     strconv.Itoa(int(partition)),
		log:       p.cfg.Logger.With("partition", partition, "generation", id),
		gen:       gen,
		token:     int64(id),
		latestIdx: map[string]int{},
	}
	var err error
	if t.eng, err = pipeline.NewEngine(p.cfg.Config, t); err != nil {
		return nil, err
	}
	if p.models != nil {
		t.mixer = p.models.forTask(context.Background(), partition)
		if err := t.eng.SetMixer(t.mixer, partition, p.cfg.Mix); err != nil {
			return nil, err
		}
	}
	if t.enc, err = pipeline.NewEncoder(t.eng.Spec(), p.cfg.Model.Levels, p.cfg.FlatPct); err != nil {
		return nil, err
	}
	return t, nil
}

// commitStage names a point of a commit, where tests pause a task (see
// Processor.commitHook).
type commitStage int

const (
	// stageCheck is before the task confirms its generation still owns
	// the partition.
	stageCheck commitStage = iota
	// stageWrite is after that confirmation, before the changelog write.
	stageWrite
)

func (s commitStage) String() string {
	if s == stageCheck {
		return "paused before its ownership check"
	}
	return "paused between its ownership check and its write"
}

// hook calls the processor's commit hook, if a test set one.
func (t *task) hook(s commitStage) {
	if h := t.proc.commitHook; h != nil {
		h(s, t.partition)
	}
}

// errAbandoned reports a batch whose outputs could not be written before
// the shutdown grace ran out; it was not committed and will be replayed.
var errAbandoned = errors.New("stream: batch abandoned at shutdown")

// errFenced reports a task whose generation no longer owns its partition:
// the group moved the partition on while the task was paused or cut off.
// Its batch is not committed; the new owner processes it.
var errFenced = errors.New("stream: the partition belongs to a newer generation")

// lostGeneration reports whether err is the coordinator's answer to a
// member that is no longer in the group's current generation.
func lostGeneration(err error) bool {
	return errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) ||
		errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.FencedInstanceID)
}

// checkOwner confirms that the task's generation still owns the partition,
// by committing offset as the group's offset of the partition (which
// also keeps lag tools current). The coordinator accepts the commit only
// from a member of its current generation, and a newer generation exists
// only once this member has left it or been dropped from it, so on
// success no other instance owned the partition when the coordinator
// answered. It retries other errors until wctx ends (errAbandoned).
func (t *task) checkOwner(wctx context.Context, offset int64) error {
	var lost error
	err := t.retry(wctx, "confirming the partition's generation", 0, func(context.Context) error {
		err := t.gen.CommitOffsets(map[string]map[int]int64{t.proc.cfg.InputTopic: {int(t.partition): offset}})
		if lostGeneration(err) {
			lost = err
			return nil
		}
		return err
	})
	if err == nil && lost != nil {
		err = fmt.Errorf("%w: %w", errFenced, lost)
	}
	return err
}

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
		if errors.Is(err, errFenced) {
			t.log.Warn("the partition moved to a newer generation while taking it over", "err", err)
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
	t.eng.BeginBatch()
	t.arrived()
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
	gate := t.proc.explain.open(t.partition, t.eng) // held: the task owns its engine
	defer t.proc.explain.close(t.partition, gate)
	t.proc.setOwned(t.partition, true)
	defer t.proc.setOwned(t.partition, false)
	defer m.forget(t.partition)

	// Outputs of the last batch must still be written after the
	// generation ends, within the shutdown grace.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(t.proc.cfg.ShutdownGrace, cancel) })
	defer stop()
	if t.mixer != nil {
		t.mixer.ctx = wctx // mixing rounds write as outputs do
	}

	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		var ferr error
		markers := f.controls
		var patience time.Duration // how long to wait for input before the idle check
		if cfg.IdleTimeout > 0 {
			patience = cfg.FetchMaxWait
		}
		// Explanation requests may borrow the engine while the task waits
		// for records, and only then.
		gate.release()
		t.recs, ferr = f.fetch(ctx, t.recs[:0], cfg.BatchSize, cfg.BatchWait, patience)
		gate.take()
		m.markers.Add(float64(f.controls - markers))
		if len(t.recs) > 0 {
			// The batch after which the generation has ended is the
			// partition's last here: it carries a model checkpoint.
			err := t.processBatch(wctx, ctx.Err() != nil)
			if errors.Is(err, errAbandoned) {
				t.log.Warn("stopping without committing the last batch; it will be replayed", "records", len(t.recs))
				return nil
			}
			if errors.Is(err, errFenced) {
				t.log.Warn("the partition moved to a newer generation; leaving this batch uncommitted to its new owner",
					"records", len(t.recs), "err", err)
				return nil
			}
			if err != nil {
				return err
			}
			t.arrived()
			m.lag.WithLabelValues(t.label).Set(float64(f.lag()))
		}
		if ctx.Err() != nil {
			if len(t.recs) == 0 && t.eng.Unsaved() {
				// No last batch carried the checkpoint: commit it alone.
				t.resetBatch(wctx)
				if err := t.commit(wctx, t.next, t.next, true); err != nil && !errors.Is(err, errAbandoned) && !errors.Is(err, errFenced) {
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
		if len(t.recs) == 0 {
			err := t.idle(wctx, f.lag())
			if errors.Is(err, errAbandoned) {
				t.log.Warn("stopping without committing the buckets the clock closed; they close again")
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
}

// arrived notes, after a batch (or the state's load), when the
// partition's input last arrived by the engine's clock and how far its
// newest event then was behind the clock, for idle.
func (t *task) arrived() {
	t.inputAt = t.eng.Now()
	if wm, ok := t.eng.Watermark(); ok {
		t.behind = t.inputAt.Sub(wm) - t.eng.Lateness()
	}
}

// idle moves the watermark of a partition without input to the clock
// minus the lateness, when the partition is idle (see
// Config.IdleTimeout) and that closes a bucket: the close's forecasts are
// written and the watermark committed like a batch's. lag is the number
// of records known to be unread.
func (t *task) idle(wctx context.Context, lag int64) error {
	timeout := t.proc.cfg.IdleTimeout
	if timeout <= 0 || lag > 0 {
		return nil
	}
	t.eng.BeginBatch()
	now := t.eng.Now()
	if now.Sub(t.inputAt) < timeout || t.behind > t.eng.Lateness()+timeout {
		return nil
	}
	t.resetBatch(wctx)
	closed, err := t.eng.Idle(now.Add(-t.eng.Lateness()))
	if err != nil {
		return fmt.Errorf("stream: partition %d idle since %s: %w", t.partition, t.inputAt.Format(time.RFC3339), err)
	}
	if !closed {
		return nil
	}
	wm, _ := t.eng.Watermark()
	t.log.Debug("idle partition: the watermark follows the clock", "watermark", wm, "idle_since", t.inputAt)
	if err := t.writeOutputs(wctx); err != nil {
		return err
	}
	err = t.commit(wctx, t.next, t.next, false)
	t.release()
	return err
}

// restore takes the partition over in the changelog and brings its local
// state up to it, retrying with backoff while Kafka is unreachable, until
// ctx ends. It first writes a fence with the task's token, so that
// restores ignore whatever an earlier owner, paused past its session,
// writes after it; it then restores up to and past the fence, and
// rewrites the keys of an unfinished commit of the previous owner found
// after the last commit marker (see changelog.repair). When the fence
// turns out lower than a token already in the changelog, and the
// coordinator confirms that this generation owns the partition, the
// group's generations started over: the token is raised above the
// changelog's highest and the fence written again.
func (t *task) restore(ctx context.Context) error {
	cl := t.proc.changelog
	if cl == nil {
		return nil
	}
	if _, _, token, ok, err := readPosition(t.proc.db, t.partition); err != nil {
		return err
	} else if ok && token >= t.token {
		t.token = token + 1
	}
	backoff := newBackoff(200*time.Millisecond, 10*time.Second)
	for {
		err := t.takeOver(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, errFenced) {
			return err
		}
		t.log.Error("restoring from the changelog", "err", err)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

// takeOver makes one attempt of restore.
func (t *task) takeOver(ctx context.Context) error {
	cl, db := t.proc.changelog, t.proc.db
	for {
		local, err := pipeline.LocalOffset(db, t.partition)
		if err != nil {
			return fmt.Errorf("stream: reading partition %d's commit point: %w", t.partition, err)
		}
		if err := cl.fence(ctx, t.partition, t.token); err != nil {
			return err
		}
		res, err := cl.restore(ctx, db, t.partition, local, false)
		if err != nil {
			return err
		}
		if res.token > t.token {
			if err := t.checkOwner(ctx, max(local, 0)); err != nil {
				return err
			}
			t.log.Warn("the changelog holds a newer generation than the group's; raising this owner's above it",
				"generation", t.token, "changelog", res.token)
			t.token = res.token + 1
			continue
		}
		if !res.tail {
			return nil
		}
		if local, err = pipeline.LocalOffset(db, t.partition); err != nil {
			return fmt.Errorf("stream: reading partition %d's commit point: %w", t.partition, err)
		}
		keys, err := cl.unfinished(ctx, t.partition, res.pos, res.end, res.posToken)
		if err != nil {
			return err
		}
		return cl.repair(ctx, db, t.partition, keys, local, t.token)
	}
}

// processBatch runs the batch through the engine, writes its outputs and
// commits its state with the next offset; the last batch of the partition
// before it is released checkpoints the models. Buffers the batch grew
// beyond what a task keeps are released.
func (t *task) processBatch(wctx context.Context, last bool) error {
	m := t.proc.m
	t.resetBatch(wctx)
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
	err := t.commit(wctx, t.recs[0].Offset, t.recs[len(t.recs)-1].Offset+1, last)
	t.release()
	return err
}

// commit writes the engine's state changes with the next input offset to
// the changelog and then in one transaction to Badger; last forces a model
// checkpoint. The batch's records start at first.
//
// The task confirms that its generation still owns the partition before
// it writes anything (checkOwner), and again after its changelog write,
// before committing to Badger. What remains: kafka-go has no fenced
// producers, so an owner frozen (a GC pause, a VM freeze, SIGSTOP) for
// longer than the session timeout between the coordinator's answer to the
// first check and the broker's append of its changelog records still
// appends them after the partition's new owner has fenced it. Restores
// ignore them (their token is below the fence's), and the second check
// keeps them out of the frozen owner's own store. They stay in the log
// until later records of their keys follow them: should compaction run
// before the new owner writes such a key again, it keeps the stale record
// and drops the new owner's older one, and a restore then lacks that
// key's current value.
func (t *task) commit(wctx context.Context, first, next int64, last bool) error {
	m := t.proc.m
	// Before the engine's writes, which delete the forecasts of series
	// they retire.
	for _, f := range t.latest {
		t.key = pipeline.ForecastKey(t.key[:0], t.partition, f.id)
		t.batch.Set(t.key, t.compact[f.from:f.to])
	}
	if err := t.eng.AppendState(&t.batch, t.partition, first, next, last); err != nil {
		return err
	}
	cl := t.proc.changelog
	confirmed := first // the offset the first check reports to the group
	if cl == nil {
		confirmed = next // it is the only check
	}
	t.hook(stageCheck)
	if err := t.checkOwner(wctx, confirmed); err != nil {
		return err
	}
	t.hook(stageWrite)
	if cl != nil {
		var marker kafka.Message
		var off int64
		var err error
		t.clmsgs, marker, err = cl.messages(t.clmsgs[:0], t.partition, &t.batch, t.token, t.proc.db)
		if err != nil {
			return fmt.Errorf("stream: partition %d: %w", t.partition, err)
		}
		err = t.retry(wctx, "writing the changelog", len(t.clmsgs)+1, func(ctx context.Context) (err error) {
			off, err = cl.write(ctx, t.partition, t.clmsgs, marker)
			return err
		})
		clear(t.clmsgs)
		if err == nil {
			err = t.checkOwner(wctx, next)
		}
		if err != nil {
			return err
		}
		t.batch.SetFinal(pipeline.RestorePositionKey(t.key[:0], t.partition), appendPosition(nil, off+1, next, t.token), 0)
	}
	started := time.Now()
	st, err := t.commitState(wctx)
	if errors.Is(err, errAbandoned) {
		return err
	}
	if err != nil {
		return fmt.Errorf("stream: committing partition %d at offset %d: %w", t.partition, next, err)
	}
	m.commitSeconds.Observe(time.Since(started).Seconds())
	if st.Transactions > 1 {
		t.log.Info("batch committed in several transactions", "transactions", st.Transactions, "bytes", t.batch.Bytes())
	}
	t.next = next

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

// commitState commits the batch to Badger. While the state directory's
// disk is too full for it (state.ErrDiskFull) the partition stalls: its
// offset does not advance and nothing is lost, the stall is logged,
// counted in the disk_full_partitions metric and makes the processor
// unready, and the commit is retried with backoff until space is freed,
// or returns errAbandoned when wctx ends first.
func (t *task) commitState(wctx context.Context) (state.CommitStats, error) {
	backoff := newBackoff(500*time.Millisecond, 10*time.Second)
	stalled := false
	defer func() {
		if stalled {
			t.proc.setDiskFull(t.partition, false)
		}
	}()
	for {
		st, err := t.proc.db.Commit(&t.batch)
		if !errors.Is(err, state.ErrDiskFull) {
			if stalled && err == nil {
				t.log.Info("the state directory has room again: the partition's commits resume")
			}
			return st, err
		}
		if !stalled {
			stalled = true
			t.proc.setDiskFull(t.partition, true)
			t.log.Error("the state directory's disk is full: holding the partition's commit until space is freed", "err", err)
		}
		if !backoff.wait(wctx) {
			return st, errAbandoned
		}
	}
}

// writeOutputs writes the batch's forecasts and dead letters. Failures
// that may clear (an unreachable broker, a moving leader) are retried with
// backoff until wctx ends, resending only the messages not yet written.
// A message the brokers refuse for itself (see refusedAlone) never blocks
// the partition: a dead letter is replaced by its bounded form, and a
// message refused even so is dropped, logged and counted.
func (t *task) writeOutputs(wctx context.Context) error {
	if len(t.out) == 0 {
		return nil
	}
	started := time.Now()
	pending := t.out
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for len(pending) > 0 {
		err := t.proc.writer.WriteMessages(wctx, pending...)
		if err == nil {
			break
		}
		t.proc.m.outputErrs.Inc()
		if wctx.Err() != nil {
			return errAbandoned
		}
		retry, refused := failedOutputs(pending, err)
		for i := range refused {
			if err := t.writeRefused(wctx, &refused[i]); err != nil {
				return err
			}
		}
		if len(retry) == 0 {
			break
		}
		t.log.Warn("writing outputs", "messages", len(retry), "err", writeError(err))
		if !backoff.wait(wctx) {
			return errAbandoned
		}
		pending = retry
	}
	t.proc.m.writeSeconds.Observe(time.Since(started).Seconds())
	clear(t.out)
	t.out = t.out[:0]
	t.arena = t.arena[:0]
	return nil
}

// failedOutputs sorts the messages a failed write did not write into
// those to retry and those refused for themselves. kafka-go's writer
// refuses a message above its batch size before sending anything; a
// broker refuses a whole produce batch for one record in it, so a refused
// message may be innocent: writeRefused sends each alone.
func failedOutputs(msgs []kafka.Message, err error) (retry, refused []kafka.Message) {
	var tooLarge kafka.MessageTooLargeError
	var werrs kafka.WriteErrors
	switch {
	case errors.As(err, &tooLarge):
		return tooLarge.Remaining, []kafka.Message{tooLarge.Message}
	case errors.As(err, &werrs) && len(werrs) == len(msgs):
		for i, e := range werrs {
			switch {
			case e == nil:
			case refusedAlone(e):
				refused = append(refused, msgs[i])
			default:
				retry = append(retry, msgs[i])
			}
		}
		return retry, refused
	}
	return msgs, nil
}

// refusedAlone reports whether a write error is a broker's verdict on the
// records themselves, which no retry changes: too large, or invalid for
// the topic. Other permanent errors, such as a missing authorization, are
// about the topic or the client and are retried until an operator fixes
// them. A kafka.WriteErrors is refused when every failed message in it is.
func refusedAlone(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && !refusedAlone(e) {
				return false
			}
		}
		return werrs.Count() > 0
	}
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) ||
		errors.Is(err, kafka.InvalidRecord) || errors.Is(err, kafka.InvalidTimestamp)
}

// writeRefused writes a message that was refused, alone, retrying failures
// that may clear. If the brokers refuse it alone, a dead letter is sent
// again in its bounded form (headers only, see boundDeadLetter); a
// forecast, or a dead letter refused even so, is dropped, logged with its
// source and counted.
func (t *task) writeRefused(wctx context.Context, m *kafka.Message) error {
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for {
		err := t.proc.writer.WriteMessages(wctx, *m)
		switch {
		case err == nil:
			return nil
		case wctx.Err() != nil:
			return errAbandoned
		case !refusedAlone(err):
			t.proc.m.outputErrs.Inc()
			t.log.Warn("writing a refused output alone", "topic", m.Topic, "err", writeError(err))
			if !backoff.wait(wctx) {
				return errAbandoned
			}
			continue
		}
		t.proc.m.outputErrs.Inc()
		if m.Topic == t.proc.cfg.DLQTopic && (len(m.Key) > 0 || len(m.Value) > 0) {
			if boundDeadLetter(m, 0) {
				t.proc.m.dlqTruncated.Inc()
			}
			t.log.Warn("the dead-letter topic refused a dead letter: sending its headers alone",
				"source", headerValue(m, hdrSource), "err", writeError(err))
			continue
		}
		if m.Topic == t.proc.cfg.DLQTopic {
			t.proc.m.outputRefused.WithLabelValues(outputDeadLetter).Inc()
			t.log.Error("dropping a dead letter the dead-letter topic refuses even without key and value",
				"source", headerValue(m, hdrSource), "reason", headerValue(m, hdrReason), "err", writeError(err))
			return nil
		}
		t.proc.m.outputRefused.WithLabelValues(outputForecast).Inc()
		t.log.Error("dropping a forecast the brokers refuse", "topic", m.Topic, "series", string(m.Key),
			"bytes", len(m.Value), "err", writeError(err))
		return nil
	}
}

// retry calls write until it succeeds, backing off between attempts and
// logging what failed (with the number of messages written, unless n is
// 0); it returns errAbandoned when wctx ends first.
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
		if n > 0 {
			t.log.Warn(what, "messages", n, "err", writeError(err))
		} else {
			t.log.Warn(what, "err", err)
		}
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

// Dead-letter headers; schema/dead-letter.schema.json describes them.
const (
	hdrReason      = "reason"
	hdrDetail      = "detail"
	hdrSource      = "source"
	hdrTruncated   = "truncated"
	hdrKeyBytes    = "original-key-bytes"
	hdrKeySHA256   = "original-key-sha256"
	hdrValueBytes  = "original-value-bytes"
	hdrValueSHA256 = "original-value-sha256"
)

// DeadLetter implements pipeline.Sink: the record goes to the dead-letter
// topic with the reason, the detail and its source (topic/partition/offset)
// in headers. A key or value longer than DLQMaxBytes is cut to a prefix
// (see boundDeadLetter), so that the dead-letter topic accepts it.
func (t *task) DeadLetter(rec *pipeline.Record, reason pipeline.Reason, detail string) error {
	m := kafka.Message{
		Topic: t.proc.cfg.DLQTopic,
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kafka.Header{
			{Key: hdrReason, Value: []byte(reason)},
			{Key: hdrDetail, Value: []byte(detail)},
			{Key: hdrSource, Value: fmt.Appendf(nil, "%s/%d/%d", t.proc.cfg.InputTopic, t.partition, rec.Offset)},
		},
	}
	if boundDeadLetter(&m, t.proc.cfg.DLQMaxBytes) {
		t.proc.m.dlqTruncated.Inc()
	}
	t.out = append(t.out, m)
	return nil
}

// boundDeadLetter cuts a dead letter's key and value to at most limit
// bytes each and reports whether it cut anything. The first cut records
// the original key's and value's sizes and SHA-256 digests in headers,
// with "truncated: true", so the record can be identified in the input
// topic from the source header.
func boundDeadLetter(m *kafka.Message, limit int) bool {
	if len(m.Key) <= limit && len(m.Value) <= limit {
		return false
	}
	if headerValue(m, hdrTruncated) == "" {
		key, value := sha256.Sum256(m.Key), sha256.Sum256(m.Value)
		m.Headers = append(m.Headers,
			kafka.Header{Key: hdrTruncated, Value: []byte("true")},
			kafka.Header{Key: hdrKeyBytes, Value: strconv.AppendInt(nil, int64(len(m.Key)), 10)},
			kafka.Header{Key: hdrKeySHA256, Value: hex.AppendEncode(nil, key[:])},
			kafka.Header{Key: hdrValueBytes, Value: strconv.AppendInt(nil, int64(len(m.Value)), 10)},
			kafka.Header{Key: hdrValueSHA256, Value: hex.AppendEncode(nil, value[:])})
	}
	m.Key = m.Key[:min(len(m.Key), limit)]
	m.Value = m.Value[:min(len(m.Value), limit)]
	return true
}

// headerValue returns the value of a message's header, or "".
func headerValue(m *kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Wants implements pipeline.Sink: live processing publishes every close.
func (t *task) Wants(int64) bool { return true }

// resetBatch starts a batch whose outputs are written with wctx.
func (t *task) resetBatch(wctx context.Context) {
	t.wctx = wctx
	t.batch.Reset()
	t.latest = t.latest[:0]
	clear(t.latestIdx)
	t.compact = t.compact[:0]
}

// outputFlushBytes is how many bytes of forecast records a batch buffers before
// it writes them, so that a batch spanning many closes holds only this
// much of its records.
const outputFlushBytes = 4 << 20

// Closed implements pipeline.Sink: the published forecast goes to the
// output topic and, as the series' latest, to the commit, in its compact
// form, from which the HTTP API renders the same record. Records are
// written once outputFlushBytes of them are buffered: forecasts are delivered
// at least once, so writing them before the commit changes nothing.
func (t *task) Closed(c *pipeline.Close) error {
	id := c.Series.ID()
	from := len(t.compact)
	t.compact = t.enc.AppendClose(t.compact, c)
	if i, ok := t.latestIdx[id]; ok {
		t.latest[i].from, t.latest[i].to = from, len(t.compact)
	} else {
		t.latestIdx[id] = len(t.latest)
		t.latest = append(t.latest, latestForecast{id: id, from: from, to: len(t.compact)})
	}
	if cap(t.arena) == 0 {
		// Sized for a flush's worth and one more record, so that it never
		// grows by copying.
		t.arena = make([]byte, 0, outputFlushBytes+64<<10)
	}
	t.arena = append(t.arena, id...)
	key := t.arena[len(t.arena)-len(id) : len(t.arena) : len(t.arena)]
	start := len(t.arena)
	var err error
	if t.arena, err = t.enc.Render(t.arena, id, t.compact[from:]); err != nil {
		return err
	}
	value := t.arena[start:len(t.arena):len(t.arena)]
	t.out = append(t.out, kafka.Message{Topic: t.proc.cfg.OutputTopic, Key: key, Value: value})
	t.closedDecision(c)
	if len(t.arena) >= outputFlushBytes {
		return t.writeOutputs(t.wctx)
	}
	return nil
}

// A task keeps at most this much buffer capacity between batches (see
// release).
const (
	retainBytes    = 8 << 20
	retainMessages = 8 << 10
)

// release drops the buffers a batch grew beyond what a task keeps between
// batches: one close of 100,000 series fills them with about 600 MB of
// forecasts, state writes and changelog messages, which a partition
// should not hold until its next close. They are regrown on demand.
func (t *task) release() {
	if cap(t.arena) > retainBytes {
		t.arena = nil
	}
	if cap(t.compact) > retainBytes {
		t.compact = nil
	}
	if cap(t.latest) > retainMessages {
		t.latest, t.latestIdx = nil, map[string]int{}
	}
	if cap(t.out) > retainMessages {
		t.out = nil
	}
	if cap(t.clmsgs) > retainMessages {
		t.clmsgs = nil
	}
	if t.batch.Bytes() > retainBytes {
		t.batch = state.Batch{}
	}
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
