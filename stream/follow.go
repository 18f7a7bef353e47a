package stream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is a record read by Follow.
type Message struct {
	// Partition and Offset locate the record.
	Partition int
	Offset    int64
	// Key, Value and Headers are the record's.
	Key, Value []byte
	Headers    []kafka.Header
}

// Follow reads every partition of topic, from the first retained record
// when fromStart is set or from the end otherwise, and calls fn for each
// record until ctx ends. Calls to fn are serialized; within a partition
// they follow offset order. Follow commits nothing: it is for tools that
// watch a topic, such as tail and the demo's live view. It returns nil
// when ctx ends.
func Follow(ctx context.Context, kc Connection, topic string, fromStart bool, fn func(Message)) error {
	conn, err := kc.Dial(ctx)
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return fmt.Errorf("stream: reading partitions of %s: %w", topic, err)
	}
	start := kafka.LastOffset
	if fromStart {
		start = kafka.FirstOffset
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(), Topic: topic,
				Partition: p.ID, MaxWait: 500 * time.Millisecond, StartOffset: start})
			defer r.Close()
			if err := r.SetOffset(start); err != nil {
				return
			}
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// The reader retries by itself; pace the loop.
					time.Sleep(100 * time.Millisecond)
					continue
				}
				mu.Lock()
				fn(Message{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Headers: m.Headers})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return nil
}
