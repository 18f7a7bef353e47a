package backtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/internal/kafkaconn"
	"github.com/trendstream/trendstream/pipeline"
)

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

// RunTopic replays a topic, each partition from its first retained record
// (or the first one at or after rng.From) to its end at the start of the
// replay (or its last record before rng.To), each partition through its
// own engine, and scores the forecasts like Run. It reads with plain
// partition readers: it joins no consumer group and commits no offset, so
// live consumers are unaffected, and it keeps its state in memory.
// Transaction markers are skipped.
func RunTopic(ctx context.Context, cfg Config, kc *kafkaconn.Connection, topic string, rng TopicRange) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if !rng.From.IsZero() && !rng.To.IsZero() && !rng.From.Before(rng.To) {
		return nil, fmt.Errorf("backtest: replay range from %s to %s is empty", rng.From.Format(time.RFC3339), rng.To.Format(time.RFC3339))
	}
	ends, err := topicEnds(ctx, kc, topic, rng)
	if err != nil {
		return nil, err
	}
	r, err := newReplay(cfg, len(ends))
	if err != nil {
		return nil, err
	}
	return r.run(ctx, func(ctx context.Context, emit func(p int, rec pipeline.Record, t time.Time) error) error {
		var wg sync.WaitGroup
		errs := make([]error, len(ends))
		for p, end := range ends {
			if end.last <= end.first {
				continue
			}
			wg.Go(func() { errs[p] = replayPartitionRange(ctx, kc, topic, p, end, emit) })
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}

// replayPartitionRange emits partition p's records in [end.first, end.last).
func replayPartitionRange(ctx context.Context, kc *kafkaconn.Connection, topic string, p int, end offsetRange, emit func(int, pipeline.Record, time.Time) error) error {
	rc := kc.ReaderConfig(topic, p)
	rd := kafka.NewReader(rc)
	defer rd.Close()
	if err := rd.SetOffset(end.first); err != nil {
		return err
	}
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return err
		}
		if !kafkaconn.TransactionMarker(&m) {
			if err := emit(p, pipeline.Record{Offset: m.Offset, Key: m.Key, Value: m.Value}, m.Time); err != nil {
				return err
			}
		}
		if m.Offset+1 >= end.last {
			return nil
		}
	}
}

type offsetRange struct{ first, last int64 }

// topicEnds returns each partition's first and end offsets, narrowed to
// the records with timestamps in rng.
func topicEnds(ctx context.Context, kc *kafkaconn.Connection, topic string, rng TopicRange) ([]offsetRange, error) {
	n, err := kc.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends := make([]offsetRange, n)
	for p := range n {
		c, err := kc.DialLeader(ctx, topic, p)
		if err != nil {
			return nil, err
		}
		first, last, err := c.ReadOffsets()
		if err == nil {
			first, last, err = narrow(c, first, last, rng)
		}
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("backtest: reading offsets of %s/%d: %w", topic, p, err)
		}
		ends[p] = offsetRange{first, last}
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
