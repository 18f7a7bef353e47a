package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// connRead reads every record with kafka-go's connection-level API, one
// Conn.ReadBatch per fetch and partition, doing nothing with them: the
// floor under trendstream's own fetcher, which reads the same way.
func connRead(ctx context.Context, brokers, topic string) error {
	ends, total, err := endOffsets(ctx, brokers, topic)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var count atomic.Int64
	errs := make(chan error, len(ends))
	began := time.Now()
	for p, end := range ends {
		wg.Go(func() {
			c, err := kafka.DialLeader(ctx, "tcp", brokers, topic, p)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for off := int64(0); off < end; {
				if _, err := c.Seek(off, kafka.SeekAbsolute); err != nil {
					errs <- err
					return
				}
				b := c.ReadBatch(1, 8<<20)
				for {
					m, err := b.ReadMessage()
					if err != nil {
						break
					}
					count.Add(1)
					off = m.Offset + 1
				}
				if err := b.Close(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	el := time.Since(began).Seconds()
	fmt.Printf("conn records=%d seconds=%.2f per_second=%.0f peak_rss_mib=%.0f\n", count.Load(), el, float64(total)/el, peakRSS(os.Getpid()))
	return nil
}
