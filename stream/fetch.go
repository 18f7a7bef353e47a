package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/trendstream/trendstream/internal/kafkaconn"
	"github.com/trendstream/trendstream/pipeline"
)

// fetcher reads one input partition from its leader with kafka-go's
// connection-level API, one fetch response at a time, on the goroutine of
// the partition's task. It does what kafka.Reader does for a single
// partition without Reader's goroutine and per-message channel, which cost
// as much CPU as the fetching itself: a bare loop over Conn.ReadBatch reads
// a topic about twice as fast as Reader.FetchMessage.
//
// A fetcher is not safe for concurrent use. Errors leave it disconnected;
// the next fetch dials the leader again.
type fetcher struct {
	conn      *Connection
	topic     string
	partition int
	maxBytes  int
	maxWait   time.Duration
	log       *slog.Logger

	c       *kafka.Conn  // nil when disconnected
	batch   *kafka.Batch // current fetch response, nil between fetches
	unwatch func() bool  // stops the batch's cancellation callback
	next    int64        // offset of the next record to return, or kafka.FirstOffset or kafka.LastOffset
	hwm     int64        // the partition's high watermark at the last fetch

	controls int64 // transaction markers skipped

	// client makes the protocol-level fetches that tell markers from data
	// (see isControl); ctl holds the control records' offsets its last
	// response showed, which covered the offsets ctlFrom to ctlTo.
	client         *kafka.Client
	ctl            []int64
	ctlFrom, ctlTo int64
}

func newFetcher(conn *Connection, topic string, partition int, maxBytes int, maxWait time.Duration, from int64, log *slog.Logger) *fetcher {
	return &fetcher{conn: conn, topic: topic, partition: partition, maxBytes: maxBytes, maxWait: maxWait,
		log: log, next: from, hwm: -1, client: conn.Client(), ctlFrom: 0, ctlTo: -1}
}

// lag returns the records between the next offset and the high watermark
// of the last fetch.
func (f *fetcher) lag() int64 {
	if f.hwm < 0 || f.next < 0 {
		return 0
	}
	return max(f.hwm-f.next, 0)
}

// close releases the connection without reading the rest of a response.
func (f *fetcher) close() {
	if f.batch != nil {
		f.c.SetReadDeadline(time.Now())
		f.endBatch()
	}
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}

// watch makes ctx's end interrupt reads of the current batch.
func (f *fetcher) watch(ctx context.Context) {
	if f.unwatch != nil {
		f.unwatch()
	}
	c := f.c
	f.unwatch = context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
}

// endBatch closes the current batch and returns its error, nil when it
// was read to its end. Past records that compaction or transaction markers
// left out, the next offset moves to where the batch ended.
func (f *fetcher) endBatch() error {
	f.unwatch()
	f.unwatch = nil
	err := f.batch.Close()
	if err == nil {
		f.next = max(f.next, f.batch.Offset())
	}
	f.batch = nil
	return err
}

// fetch appends records to dst: it waits until at least one record has
// arrived, ctx ends or, when patience is positive, patience has passed
// without a record, then takes what arrives within wait, up to limit
// records in all. On an error it returns the records read before it.
func (f *fetcher) fetch(ctx context.Context, dst []pipeline.Record, limit int, wait, patience time.Duration) ([]pipeline.Record, error) {
	began := time.Now()
	var deadline time.Time // set by the first record
	if f.batch != nil {
		// The rest of a response left by the last call: processing may have
		// outlasted the read deadline of its fetch.
		f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		f.watch(ctx)
	}
	for len(dst) < limit {
		if f.batch == nil {
			budget := f.maxWait
			switch {
			case !deadline.IsZero():
				budget = time.Until(deadline)
			case patience > 0:
				budget = patience - time.Since(began)
			}
			if budget <= 0 {
				break
			}
			budget = min(budget, f.maxWait)
			if err := ctx.Err(); err != nil {
				return dst, err
			}
			if err := f.start(ctx, budget); err != nil {
				return dst, err
			}
		}
		msg, err := f.batch.ReadMessage()
		if err != nil {
			cerr := f.endBatch()
			if errors.Is(err, io.EOF) {
				if cerr == nil {
					continue
				}
				err = cerr
			}
			if err := f.fail(ctx, err); err != nil {
				return dst, err
			}
			continue
		}
		if msg.Offset < f.next {
			// A compressed record batch starts before the requested offset.
			continue
		}
		if kafkaconn.TransactionMarker(&msg) {
			control, err := f.isControl(ctx, msg.Offset)
			if err != nil {
				f.close() // the next fetch reads the record again
				return dst, err
			}
			if control {
				f.next = msg.Offset + 1
				f.controls++
				continue
			}
		}
		dst = append(dst, pipeline.Record{Offset: msg.Offset, Key: msg.Key, Value: msg.Value})
		f.next = msg.Offset + 1
		if deadline.IsZero() {
			deadline = time.Now().Add(wait)
		}
	}
	return dst, nil
}

// ctlProbeBytes bounds the response of a fetch that tells markers from
// data: one record batch at least, a few when they are small.
const ctlProbeBytes = 64 << 10

// isControl reports whether the record at offset, which has the shape of
// a transaction marker, is one. kafka.Batch drops the record batch
// attributes that mark control batches, and a data record can have a
// marker's shape, so the partition's leader is asked again through
// kafka-go's protocol-level Client.Fetch, whose response keeps control
// batches apart (*protocol.ControlBatch). Its answer covers the batches the
// response holds, so a run of small transactions costs one request per
// ctlProbeBytes of input, not one per marker.
func (f *fetcher) isControl(ctx context.Context, offset int64) (bool, error) {
	if offset < f.ctlFrom || offset > f.ctlTo {
		resp, err := f.client.Fetch(ctx, &kafka.FetchRequest{Topic: f.topic, Partition: f.partition,
			Offset: offset, MinBytes: 1, MaxBytes: ctlProbeBytes, MaxWait: f.maxWait})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return false, fmt.Errorf("stream: checking whether %s/%d offset %d is a transaction marker: %w", f.topic, f.partition, offset, err)
		}
		f.ctl, f.ctlFrom, f.ctlTo = f.ctl[:0], offset, offset
		if rs, ok := resp.Records.(*protocol.RecordStream); ok {
			for _, r := range rs.Records {
				if cb, ok := r.(*protocol.ControlBatch); ok {
					f.ctl = append(f.ctl, cb.BaseOffset)
					f.ctlTo = max(f.ctlTo, cb.BaseOffset)
				}
			}
		}
	}
	return slices.Contains(f.ctl, offset), nil
}

// start connects if needed and sends a fetch for the next offset that the
// broker may hold for up to budget.
func (f *fetcher) start(ctx context.Context, budget time.Duration) error {
	if f.c == nil {
		if err := f.connect(ctx); err != nil {
			return err
		}
	}
	if _, err := f.c.Seek(f.next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		f.close()
		return fmt.Errorf("stream: seeking %s/%d to %d: %w", f.topic, f.partition, f.next, err)
	}
	// The network deadline covers the broker's wait plus the transfer; a
	// context that ends interrupts the reads through the deadline.
	f.c.SetReadDeadline(time.Now().Add(budget + 10*time.Second))
	f.watch(ctx)
	f.batch = f.c.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: budget})
	if f.batch.Err() == nil {
		f.hwm = f.batch.HighWaterMark()
	}
	return nil
}

// connect dials the partition's leader through the first broker that
// answers and resolves a symbolic next offset.
func (f *fetcher) connect(ctx context.Context) error {
	var errs []error
	for _, broker := range f.conn.Brokers {
		c, err := f.conn.Dialer().DialLeader(ctx, "tcp", broker, f.topic, f.partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.c = c
		if f.next < 0 {
			first, last, err := f.offsets()
			if err != nil {
				return err
			}
			if f.next == kafka.LastOffset {
				first = last
			}
			f.next = first
		}
		return nil
	}
	return fmt.Errorf("stream: connecting to the leader of %s/%d: %w", f.topic, f.partition, errors.Join(errs...))
}

// offsets reads the partition's first and end offsets.
func (f *fetcher) offsets() (first, last int64, err error) {
	f.c.SetDeadline(time.Now().Add(10 * time.Second))
	first, last, err = f.c.ReadOffsets()
	f.c.SetDeadline(time.Time{})
	if err != nil {
		f.close()
		return 0, 0, fmt.Errorf("stream: reading the offsets of %s/%d: %w", f.topic, f.partition, err)
	}
	return first, last, nil
}

// errPastEnd reports a next offset beyond the partition's end, as after
// the topic was recreated or an unclean leader election.
var errPastEnd = errors.New("past its end")

// permanent reports whether a fetch error will not clear by retrying: an
// offset past the end, or a Kafka error the protocol marks as not
// temporary (authorization, unknown topic, corrupt data).
func permanent(err error) bool {
	var ke kafka.Error
	return errors.Is(err, errPastEnd) || errors.As(err, &ke) && !ke.Temporary()
}

// fail handles a failed fetch. A failed response may leave unread bytes
// on the connection, so it is closed. fail returns nil when fetching may
// go on at once (the broker had no data in time, or the next offset was
// deleted and moves to the first retained one) and an error otherwise,
// after which the fetcher reconnects on the next fetch.
func (f *fetcher) fail(ctx context.Context, err error) error {
	f.close()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, kafka.RequestTimedOut):
		return nil
	case errors.Is(err, kafka.OffsetOutOfRange):
		if cerr := f.connect(ctx); cerr != nil {
			return cerr
		}
		first, last, oerr := f.offsets()
		if oerr != nil {
			return oerr
		}
		switch {
		case f.next < first:
			f.log.Warn("input records were deleted before they were read: skipping to the first retained one",
				"offset", f.next, "first", first, "skipped", first-f.next)
			f.next = first
			return nil
		case f.next <= last:
			return nil // in range again: the error was transient
		}
		return fmt.Errorf("stream: offset %d of %s/%d is %w %d", f.next, f.topic, f.partition, errPastEnd, last)
	}
	return fmt.Errorf("stream: fetching %s/%d at offset %d: %w", f.topic, f.partition, f.next, err)
}
