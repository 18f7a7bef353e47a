package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// A changelog mirrors every partition's committed state to a compacted
// topic co-partitioned with the input: each commit's writes, in commit
// order, keyed by their state key, deletes as tombstones. An instance that
// is assigned a partition its local store lacks, or holds an older state
// of, restores the partition from it before processing.
//
// Records are written before the state commit, so the changelog is never
// behind the store that wrote it; a crash in between leaves a commit in the
// changelog whose input is replayed anyway, which is harmless for the same
// reason a split commit is (see state.Batch). A commit's last record is its
// commit point, the commit marker, written once every other record of the
// commit is acknowledged (see write): a restore applies whole commits only,
// and discards the records after the last marker, which a writer stopped
// in the middle of a commit left. Values too large for one Kafka record
// (model checkpoints) are split into chunk records.
type changelog struct {
	conn  Connection
	topic string
	w     *kafka.Writer
	// client writes commit markers, one request each.
	client *kafka.Client
	log    *slog.Logger
	m      *metrics
	ttl    time.Duration // of restored dedup records
	// stageLimit bounds the writes a restore holds until their commit
	// marker (see restorer); stageLimit by default.
	stageLimit int
}

// chunkSize is the largest value written as one changelog record.
const chunkSize = 512 << 10

// chunkHeader marks a record whose value was split: its value is the
// number of chunks, stored under the key followed by chunkSuffix and the
// big-endian chunk index.
const chunkHeader = "trendstream-chunks"

var chunkSuffix = []byte("\xff\xffchunk")

func newChangelog(conn Connection, topic string, dedupTTL time.Duration, log *slog.Logger, m *metrics) *changelog {
	w := conn.Writer(topic)
	w.Balancer = kafka.BalancerFunc(keyPartition)
	w.MaxAttempts = 3
	w.Logger = kafkaLogger(log, slog.LevelDebug)
	w.ErrorLogger = kafkaLogger(log, slog.LevelDebug)
	return &changelog{conn: conn, topic: topic, w: w, client: conn.Client(), log: log, m: m, ttl: dedupTTL, stageLimit: stageLimit}
}

// close closes the writer and the marker client's idle connections.
func (c *changelog) close() error {
	if t, ok := c.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	return c.w.Close()
}

// keyPartition routes a state key to the partition its keyspace names.
func keyPartition(msg kafka.Message, partitions ...int) int {
	if p, ok := pipeline.KeyPartition(msg.Key); ok && int(p) < len(partitions) {
		return partitions[p]
	}
	return partitions[0]
}

// messages appends the changelog records of partition p's commit batch to
// dst, but for its commit point, which it returns as the commit marker.
// The records alias the batch's buffers.
func (c *changelog) messages(dst []kafka.Message, p int32, b *state.Batch) (records []kafka.Message, marker kafka.Message) {
	point := pipeline.CommitPointKey(nil, p)
	b.Each(func(key, value []byte, _ time.Duration) {
		if _, ok := pipeline.KeyPartition(key); !ok {
			return // global index entries are rebuilt on restore
		}
		if bytes.Equal(key, point) {
			marker = kafka.Message{Key: key, Value: value}
			return
		}
		if len(value) <= chunkSize {
			dst = append(dst, kafka.Message{Key: key, Value: value})
			return
		}
		n := (len(value) + chunkSize - 1) / chunkSize
		for i := range n {
			ck := append(append(append([]byte(nil), key...), chunkSuffix...), 0, 0, 0, 0)
			binary.BigEndian.PutUint32(ck[len(ck)-4:], uint32(i))
			dst = append(dst, kafka.Message{Key: ck, Value: value[i*chunkSize : min((i+1)*chunkSize, len(value))]})
		}
		count := []byte(strconv.Itoa(n))
		dst = append(dst, kafka.Message{Key: key, Value: count, Headers: []kafka.Header{{Key: chunkHeader, Value: count}}})
	})
	return dst, marker
}

// write writes a commit of partition p to the changelog: its records, and
// only once every one is acknowledged, in a request of its own, its commit
// marker, whose offset it returns. kafka-go's writer splits records into
// batches and gives up on a failed batch while still writing later ones,
// so a marker written with them could land while records of its commit
// are missing. On error, records may have been written; a retry writes
// them all again.
func (c *changelog) write(ctx context.Context, p int32, records []kafka.Message, marker kafka.Message) (int64, error) {
	if err := c.w.WriteMessages(ctx, records...); err != nil {
		return 0, err
	}
	resp, err := c.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: c.topic, Partition: int(p), RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes(marker.Key), Value: kafka.NewBytes(marker.Value), Headers: marker.Headers}),
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return 0, fmt.Errorf("stream: writing the commit marker of %s/%d: %w", c.topic, p, err)
	}
	return resp.BaseOffset, nil
}

// ensure creates the changelog topic, compacted and with as many
// partitions as the input, or checks the existing one has as many.
func (c *changelog) ensure(ctx context.Context, input string) error {
	client := c.conn.Client()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{input, c.topic}})
	if err != nil {
		return fmt.Errorf("stream: reading topic metadata: %w", err)
	}
	parts := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			parts[t.Name] = len(t.Partitions)
		}
	}
	in, ok := parts[input]
	if !ok {
		return fmt.Errorf("stream: input topic %q does not exist", input)
	}
	if n, ok := parts[c.topic]; ok {
		if n != in {
			return fmt.Errorf("stream: changelog %q has %d partitions, the input %q %d: they must be co-partitioned", c.topic, n, input, in)
		}
		return nil
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.topic, NumPartitions: in, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err != nil {
		return fmt.Errorf("stream: creating changelog %q: %w", c.topic, err)
	}
	if err := resp.Errors[c.topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("stream: creating changelog %q: %w", c.topic, err)
	}
	return nil
}

// restore brings partition p of db up to the changelog when db lacks the
// partition or holds an older commit of it, and reports whether it did.
// local is the next input offset db's commit point holds, -1 for none.
// When db's state is where an earlier restore left it, restore reads only
// the records written since; otherwise it rebuilds the partition from the
// whole changelog. A standby restore, which keeps a partition this instance
// does not own warm, logs at debug level and counts its records apart.
//
// Only whole commits are applied: the records after the last commit
// marker belong to a commit whose writer stopped before finishing it, and
// are discarded.
func (c *changelog) restore(ctx context.Context, db *state.DB, p int32, local int64, standby bool) (bool, error) {
	first, end, err := c.offsets(ctx, p)
	if err != nil || end <= first {
		return false, err
	}
	last, err := c.read(ctx, p, end-1, end, nil)
	if err != nil {
		return false, err
	}
	if bytes.Equal(last.Key, pipeline.CommitPointKey(nil, p)) {
		logged, err := pipeline.CommitOffset(p, last.Value)
		if err != nil {
			return false, err
		}
		switch {
		case logged == local:
			return false, nil
		case local > logged:
			c.log.Warn("local state is ahead of the changelog; keeping it", "partition", p, "local_offset", local, "changelog_offset", logged)
			return false, nil
		}
	}
	from, mode := first, "full"
	if pos, at, ok, err := readPosition(db, p); err != nil {
		return false, err
	} else if ok && at == local && pos >= first && pos <= end {
		from, mode = pos, "incremental"
	}
	level := slog.LevelInfo
	if standby {
		level = slog.LevelDebug
	}
	started := time.Now()
	c.log.Log(ctx, level, "restoring partition from the changelog", "partition", p, "mode", mode,
		"records", end-from, "local_offset", local)
	a, err := c.replay(ctx, db, p, from, end, mode == "full", standby)
	if errors.Is(err, errUnconfirmed) {
		// Writes read after the last commit marker overflowed the staging
		// bound and reached the store before it was known that no marker
		// followed them: rebuild the partition up to that marker.
		c.log.Warn("the changelog ends with a large unfinished commit; rebuilding the partition up to the last whole commit",
			"partition", p, "records", end-a.pos)
		mode = "full"
		_, err = c.replay(ctx, db, p, first, max(a.pos, first), true, standby)
	}
	if err != nil {
		return false, fmt.Errorf("stream: restoring partition %d from %s: %w", p, c.topic, err)
	}
	c.m.restores.WithLabelValues(mode).Inc()
	if !standby {
		c.m.restoreSeconds.Observe(time.Since(started).Seconds())
	}
	c.log.Log(ctx, level, "partition restored", "partition", p, "mode", mode, "records", end-from,
		"discarded", end-a.pos, "seconds", time.Since(started).Seconds())
	return true, nil
}

// errUnconfirmed reports a replay that wrote records the changelog turned
// out to hold no commit marker for.
var errUnconfirmed = errors.New("stream: writes of an unfinished commit reached the store")

// replay applies changelog partition p's records from offset from to end
// to db, after deleting the partition from db when full is set, and
// returns the restorer, whose pos is the offset after the last commit
// marker applied (from when none was).
func (c *changelog) replay(ctx context.Context, db *state.DB, p int32, from, end int64, full, standby bool) (*restorer, error) {
	a := &restorer{db: db, p: p, ttl: c.ttl, limit: c.stageLimit, chunks: map[string][][]byte{}, pos: from, at: -1}
	if full {
		if err := db.DeletePrefix(pipeline.PartitionPrefix(nil, p)); err != nil {
			return a, err
		}
	}
	records := c.m.restoreRecords
	if standby {
		records = c.m.standbyRecords
	}
	label := strconv.Itoa(int(p))
	_, err := c.read(ctx, p, from, end, func(m kafka.Message) error {
		records.Inc()
		if !standby {
			c.m.restoreProgress.WithLabelValues(label).Set(float64(m.Offset-from+1) / float64(end-from))
		}
		return a.apply(m)
	})
	if err == nil {
		err = a.finish()
	}
	return a, err
}

// positionVersion is the encoding version of a restore position.
const positionVersion = 1

// readPosition returns where the last restore of partition p stopped
// reading the changelog (after the commit point it applied last) and the
// input offset of that commit point.
func readPosition(db *state.DB, p int32) (pos, at int64, ok bool, err error) {
	ok, err = db.Get(pipeline.RestorePositionKey(nil, p), func(v []byte) error {
		if len(v) < 1 || v[0] != positionVersion {
			return fmt.Errorf("stream: partition %d restore position has unknown encoding version %v (this build reads %d)", p, v[:min(len(v), 1)], positionVersion)
		}
		var n, m int
		pos, n = binary.Varint(v[1:])
		if n > 0 {
			at, m = binary.Varint(v[1+n:])
		}
		if n <= 0 || m <= 0 {
			return fmt.Errorf("stream: partition %d restore position is corrupt", p)
		}
		return nil
	})
	return pos, at, ok, err
}

// offsets returns the first and end offsets of changelog partition p.
func (c *changelog) offsets(ctx context.Context, p int32) (first, end int64, err error) {
	conn, err := c.conn.DialLeader(ctx, c.topic, int(p))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if first, end, err = conn.ReadOffsets(); err != nil {
		return 0, 0, fmt.Errorf("stream: reading offsets of %s/%d: %w", c.topic, p, err)
	}
	return first, end, nil
}

// read reads changelog partition p from offset from until end, calling fn
// for each record (when fn is set), and returns the last record read.
func (c *changelog) read(ctx context.Context, p int32, from, end int64, fn func(kafka.Message) error) (kafka.Message, error) {
	rc := c.conn.ReaderConfig(c.topic, int(p))
	rc.MaxWait = 200 * time.Millisecond
	r := kafka.NewReader(rc)
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return kafka.Message{}, err
	}
	var last kafka.Message
	for r.Offset() < end {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return last, err
		}
		if fn != nil {
			if err := fn(m); err != nil {
				return last, err
			}
		}
		last = m
		if m.Offset+1 >= end {
			break
		}
	}
	return last, nil
}

// stageLimit is the default bound on the bytes of writes a restore holds
// in memory until the commit marker that confirms them is read. Past it
// they go to the store unconfirmed: a compacted changelog has lost the
// markers of its older commits, and a commit can be larger than memory
// should hold.
const stageLimit = 64 << 20

// flushBytes is the size at which a restore writes the whole commits it
// has read to the store.
const flushBytes = 4 << 20

// restorer applies changelog records to a partition's keyspace, whole
// commits at a time: the writes read since the last commit marker are
// held back (staged in b after mark) until the next marker confirms them,
// and dropped if none does.
type restorer struct {
	db     *state.DB
	p      int32
	ttl    time.Duration
	limit  int
	b      state.Batch
	mark   state.Mark // b's writes after mark await their commit marker
	chunks map[string][][]byte

	// unconfirmed is set while writes that no marker has confirmed yet
	// are in the store, because they overflowed limit.
	unconfirmed bool
	// pos is the changelog offset after the last commit marker applied,
	// whose input offset is at; at is -1 before one.
	pos, at int64
}

func (a *restorer) apply(m kafka.Message) error {
	if i := bytes.LastIndex(m.Key, chunkSuffix); i > 0 && len(m.Key) == i+len(chunkSuffix)+4 {
		base := string(m.Key[:i])
		a.chunks[base] = append(a.chunks[base], bytes.Clone(m.Value))
		return nil
	}
	value := m.Value
	for _, h := range m.Headers {
		if h.Key == chunkHeader {
			n, _ := strconv.Atoi(string(h.Value))
			parts := a.chunks[string(m.Key)]
			if len(parts) < n {
				return fmt.Errorf("record %d: %d of %d chunks", m.Offset, len(parts), n)
			}
			value = bytes.Join(parts[len(parts)-n:], nil)
			delete(a.chunks, string(m.Key))
		}
	}
	r, err := pipeline.ApplyRestored(&a.b, a.p, m.Key, value, a.ttl)
	if err != nil {
		return fmt.Errorf("record %d: %w", m.Offset, err)
	}
	switch {
	case r.CommitPoint:
		a.pos, a.at = m.Offset+1, r.Next
		a.unconfirmed = false
		a.mark = a.b.Mark()
		if a.b.Bytes() >= flushBytes {
			return a.flush()
		}
	case a.b.Bytes() > a.limit:
		a.unconfirmed = true
		return a.flush()
	}
	return nil
}

// finish drops the writes no commit marker confirmed and writes the rest
// with, when a commit point was applied, the position the next restore
// can resume from. It returns errUnconfirmed when unconfirmed writes
// already reached the store.
func (a *restorer) finish() error {
	if a.unconfirmed {
		return errUnconfirmed
	}
	a.b.Rewind(a.mark)
	if a.at >= 0 {
		v := binary.AppendVarint([]byte{positionVersion}, a.pos)
		a.b.SetFinal(pipeline.RestorePositionKey(nil, a.p), binary.AppendVarint(v, a.at), 0)
	}
	return a.flush()
}

func (a *restorer) flush() error {
	if a.b.Len() > 0 {
		if _, err := a.db.Commit(&a.b); err != nil {
			return err
		}
	}
	a.b.Reset()
	a.mark = a.b.Mark()
	return nil
}
