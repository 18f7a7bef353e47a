package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/source"
)

// ProduceConfig configures Produce. The zero value of each field but
// Brokers and Topic means its default.
type ProduceConfig struct {
	// Connection says how to reach the brokers. Brokers is required.
	Connection
	// Topic receives the records. Required. It is created with Partitions
	// partitions if missing.
	Topic string
	// Partitions of the topic if Produce creates it. The default is 8.
	Partitions int
	// Speed is the replay speed in event time per wall-clock time: 3600
	// sends an hour of events per second. Zero sends as fast as possible.
	Speed float64
	// PaceFrom is the event time from which pacing starts: records due
	// before it are sent at once (a backfill), later ones at Speed. The
	// default is the first record's time.
	PaceFrom time.Time
	// BatchSize is the most records per write. The default is 5000.
	BatchSize int
	// Progress, if set, is called after each write with the records sent
	// so far and the due time of the last one.
	Progress func(sent int64, due time.Time)
	// Logger receives warnings. The default discards them.
	Logger *slog.Logger
}

// Produce writes every record of src to the topic, keyed for murmur2
// partitioning, paced by the records' due times when Speed is set. It
// returns the number of records written when src ends or ctx is done.
func Produce(ctx context.Context, cfg ProduceConfig, src source.Source) (int64, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return 0, errors.New("stream: Produce needs Brokers and Topic")
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 8
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 5000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Speed < 0 || cfg.BatchSize < 1 || cfg.Partitions < 1 {
		return 0, fmt.Errorf("stream: Produce: Speed %v, BatchSize %d, Partitions %d", cfg.Speed, cfg.BatchSize, cfg.Partitions)
	}
	if err := EnsureTopics(ctx, cfg.Connection, cfg.Partitions, 0, cfg.Topic); err != nil {
		return 0, err
	}
	w := cfg.Writer(cfg.Topic)
	w.BatchSize = cfg.BatchSize
	w.Logger = kafkaLogger(cfg.Logger, slog.LevelDebug)
	w.ErrorLogger = kafkaLogger(cfg.Logger, slog.LevelDebug)
	defer w.Close()
	p := producer{cfg: cfg, w: w}
	err := p.run(ctx, src)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return p.sent, err
}

type producer struct {
	cfg   ProduceConfig
	w     *kafka.Writer
	msgs  []kafka.Message
	arena []byte
	sent  int64
	last  time.Time

	wallStart time.Time
	simStart  time.Time
}

func (p *producer) run(ctx context.Context, src source.Source) error {
	for {
		rec, err := src.Next()
		if err == io.EOF {
			return p.flush(ctx)
		}
		if err != nil {
			return err
		}
		if wait := p.wait(rec.Time); wait > 0 {
			if err := p.flush(ctx); err != nil {
				return err
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
		}
		start := len(p.arena)
		p.arena = append(p.arena, rec.Key...)
		p.arena = append(p.arena, rec.Value...)
		mid := start + len(rec.Key)
		var key []byte
		if rec.Key != nil {
			key = p.arena[start:mid:mid]
		}
		p.msgs = append(p.msgs, kafka.Message{Key: key, Value: p.arena[mid:len(p.arena):len(p.arena)]})
		if !rec.Time.IsZero() {
			p.last = rec.Time
		}
		if len(p.msgs) >= p.cfg.BatchSize {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
	}
}

// wait returns how long to wait before sending a record due at t.
func (p *producer) wait(t time.Time) time.Duration {
	if p.cfg.Speed == 0 || t.IsZero() {
		return 0
	}
	if p.simStart.IsZero() {
		p.simStart = p.cfg.PaceFrom
		if p.simStart.IsZero() {
			p.simStart = t
		}
		p.wallStart = time.Now()
	}
	if t.Before(p.simStart) {
		return 0
	}
	due := p.wallStart.Add(time.Duration(float64(t.Sub(p.simStart)) / p.cfg.Speed))
	return time.Until(due)
}

func (p *producer) flush(ctx context.Context) error {
	if len(p.msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, p.msgs...); err != nil {
		return fmt.Errorf("stream: producing to %s: %w", p.cfg.Topic, err)
	}
	p.sent += int64(len(p.msgs))
	clear(p.msgs)
	p.msgs = p.msgs[:0]
	p.arena = p.arena[:0]
	if p.cfg.Progress != nil {
		p.cfg.Progress(p.sent, p.last)
	}
	return nil
}
