package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
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
//
// Every record carries its writer's fencing token in a header (see
// genHeader): the consumer-group generation the writer owned the partition
// in. A new owner writes a fence record with its token before restoring,
// and a restore ignores the records of a lower token that follow a higher
// one: those of an owner that was paused past its session timeout and
// wrote after the partition had moved on (see task.commit for how rarely
// that can happen). The new owner then rewrites, after its fence, the
// current value of every key the unfinished commit of its predecessor
// touched (see repair), so the records of that commit are overwritten in
// the log, for restores and compaction alike.
type changelog struct {
	conn  Connection
	topic string
	w     *kafka.Writer
	// client writes commit markers and fences, one request each.
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

// A value larger than chunkSize (a learner checkpoint) is written as its
// chunks, then a descriptor under the value's key that names them. The
// chunk keys are the value's key, chunkSuffix, the first 8 bytes of the
// value's SHA-256 digest and the big-endian chunk index, so each version
// of a value has chunk keys of its own: compaction cannot mix the chunks
// of two versions, and a descriptor left without its chunks (by a
// writer stopped between them, or compaction) is recognized. The writer
// of a new version tombstones the previous version's chunks after the new
// descriptor. A restore verifies a value against its descriptor's
// digest; when chunks are missing it keeps the key's previous value, or
// none, with a warning (a learner then continues from an older checkpoint
// or starts afresh), never failing.
var chunkSuffix = []byte("\xff\xffchunk")

// chunkedHeader marks a descriptor (see appendDescriptor).
const chunkedHeader = "trendstream-chunked"

// legacyChunkHeader marked the chunk counts of builds whose chunk keys
// carried no version (the suffix and a 4-byte index); a restore skips
// those values with a warning.
const legacyChunkHeader = "trendstream-chunks"

// descriptorVersion is the encoding version of a descriptor.
const descriptorVersion = 1

// chunked describes a value written in chunks.
type chunked struct {
	n, size int
	digest  [sha256.Size]byte
}

func describe(value []byte) chunked {
	return chunked{n: (len(value) + chunkSize - 1) / chunkSize, size: len(value), digest: sha256.Sum256(value)}
}

// appendDescriptor appends the descriptor of a chunked value to dst: the
// version, the chunk count and value size as uvarints, and the digest.
func appendDescriptor(dst []byte, c chunked) []byte {
	dst = append(dst, descriptorVersion)
	dst = binary.AppendUvarint(dst, uint64(c.n))
	dst = binary.AppendUvarint(dst, uint64(c.size))
	return append(dst, c.digest[:]...)
}

func parseDescriptor(b []byte) (c chunked, err error) {
	if len(b) < 1 || b[0] != descriptorVersion {
		return c, fmt.Errorf("chunk descriptor version %v (this build reads %d)", b[:min(len(b), 1)], descriptorVersion)
	}
	n, k := binary.Uvarint(b[1:])
	size, m := binary.Uvarint(b[1+max(k, 0):])
	if k <= 0 || m <= 0 || len(b) != 1+k+m+sha256.Size || n > uint64(size/chunkSize+1) {
		return c, errors.New("corrupt chunk descriptor")
	}
	c.n, c.size = int(n), int(size)
	copy(c.digest[:], b[1+k+m:])
	return c, nil
}

// chunkKey appends the key of chunk i of the value c describes, under key,
// to dst.
func chunkKey(dst, key []byte, c *chunked, i int) []byte {
	dst = append(append(append(dst, key...), chunkSuffix...), c.digest[:8]...)
	return binary.BigEndian.AppendUint32(dst, uint32(i))
}

// chunkKind tells chunk keys (see chunkKey) and the chunk keys of earlier
// builds apart from other keys.
func chunkKind(key []byte) (chunk, legacy bool) {
	i := bytes.LastIndex(key, chunkSuffix)
	if i <= 0 {
		return false, false
	}
	rest := len(key) - i - len(chunkSuffix)
	return rest == 12, rest == 4
}

// genHeader is the header holding a record's fencing token, in decimal:
// the consumer-group generation in which its writer took the partition
// over, raised above every token in the changelog when the group's
// generations started over (a group deleted and created again).
const genHeader = "trendstream-generation"

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

// tokenHeaders returns the headers stamping a record with token.
func tokenHeaders(token int64) []kafka.Header {
	return []kafka.Header{{Key: genHeader, Value: strconv.AppendInt(nil, token, 10)}}
}

// recordToken returns the fencing token of a record, 0 for records
// written before records carried one.
func recordToken(m *kafka.Message) int64 {
	for _, h := range m.Headers {
		if h.Key == genHeader {
			n, _ := strconv.ParseInt(string(h.Value), 10, 64)
			return n
		}
	}
	return 0
}

// messages appends the changelog records of partition p's commit batch to
// dst, stamped with token, but for its commit point, which it returns as
// the commit marker. prev is the store the batch is about to be committed
// to: the previous versions of chunked values are read from it. The
// records alias the batch's buffers.
func (c *changelog) messages(dst []kafka.Message, p int32, b *state.Batch, token int64, prev pipeline.Store) (records []kafka.Message, marker kafka.Message, err error) {
	point := pipeline.CommitPointKey(nil, p)
	stamp := tokenHeaders(token)
	dst = slices.Grow(dst, b.Len()) // one record per write but chunked values
	chunkedStamp := append(tokenHeaders(token), kafka.Header{Key: chunkedHeader, Value: []byte{descriptorVersion}})
	b.Each(func(key, value []byte, _ time.Duration) {
		if _, ok := pipeline.KeyPartition(key); !ok || err != nil {
			return // global index entries are rebuilt on restore
		}
		if bytes.Equal(key, point) {
			marker = kafka.Message{Key: key, Value: value, Headers: stamp}
			return
		}
		if len(value) <= chunkSize {
			dst = append(dst, kafka.Message{Key: key, Value: value, Headers: stamp})
			return
		}
		var old *chunked
		if _, err = prev.Get(key, func(v []byte) error {
			if len(v) > chunkSize {
				d := describe(v)
				old = &d
			}
			return nil
		}); err != nil {
			return
		}
		d := describe(value)
		for i := range d.n {
			dst = append(dst, kafka.Message{Key: chunkKey(nil, key, &d, i), Value: value[i*chunkSize : min((i+1)*chunkSize, len(value))], Headers: stamp})
		}
		dst = append(dst, kafka.Message{Key: key, Value: appendDescriptor(nil, d), Headers: chunkedStamp})
		if old != nil && old.digest != d.digest {
			for i := range old.n {
				dst = append(dst, kafka.Message{Key: chunkKey(nil, key, old, i), Headers: stamp})
			}
		}
	})
	return dst, marker, err
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
	return c.produce(ctx, p, marker)
}

// produce writes one record to partition p and returns its offset.
func (c *changelog) produce(ctx context.Context, p int32, m kafka.Message) (int64, error) {
	resp, err := c.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: c.topic, Partition: int(p), RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}),
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return 0, fmt.Errorf("stream: writing %x to %s/%d: %w", m.Key, c.topic, p, err)
	}
	return resp.BaseOffset, nil
}

// fence writes partition p's fence record: from it on, a restore ignores
// the records of tokens below token.
func (c *changelog) fence(ctx context.Context, p int32, token int64) error {
	stamp := tokenHeaders(token)
	_, err := c.produce(ctx, p, kafka.Message{Key: pipeline.FenceKey(nil, p), Value: stamp[0].Value, Headers: stamp})
	return err
}

// repair rewrites, stamped with token, the current value in db of each of
// keys of partition p (a tombstone for a key db lacks) and then db's commit
// point as a commit marker, and records in db the position after it.
// keys are those an unfinished commit wrote after the last marker: the
// restores that read the repair apply those records followed by the
// repair, so they hold db's state, and compaction drops the unfinished
// commit's records, each followed by a later record of its key.
func (c *changelog) repair(ctx context.Context, db *state.DB, p int32, keys [][]byte, local, token int64) error {
	var sets, b state.Batch
	for _, k := range keys {
		found, err := db.Get(k, func(v []byte) error { sets.Set(k, v); return nil })
		if err != nil {
			return err
		}
		if !found {
			b.Delete(k) // before the sets: an older chunk key may be written again
		}
	}
	sets.Each(func(k, v []byte, _ time.Duration) { b.Set(k, v) })
	point := pipeline.CommitPointKey(nil, p)
	found, err := db.Get(point, func(v []byte) error { b.SetFinal(point, v, 0); return nil })
	if err != nil {
		return err
	}
	if !found {
		b.DeleteFinal(point)
	}
	records, marker, err := c.messages(nil, p, &b, token, db)
	if err != nil {
		return err
	}
	off, err := c.write(ctx, p, records, marker)
	if err != nil {
		return err
	}
	c.log.Info("rewrote the keys of an unfinished changelog commit", "partition", p, "keys", len(keys), "offset", off)
	b.Reset()
	b.SetFinal(pipeline.RestorePositionKey(nil, p), appendPosition(nil, off+1, local, token), 0)
	_, err = db.Commit(&b)
	return err
}

// ensure creates the changelog topic, compacted, with as many partitions
// as the input and replication replicas (the brokers' default when 0), or
// checks that the existing one is compacted and has as many partitions.
func (c *changelog) ensure(ctx context.Context, input string, replication int) error {
	meta, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{input, c.topic}})
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
	n, ok := parts[c.topic]
	if !ok {
		resp, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: c.topic, NumPartitions: in, ReplicationFactor: replicas(replication),
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
		}}})
		if err == nil {
			err = resp.Errors[c.topic]
		}
		if err == nil || errors.Is(err, kafka.TopicAlreadyExists) {
			return nil
		}
		return fmt.Errorf("stream: creating changelog topic %q: %w", c.topic, err)
	}
	if n != in {
		return fmt.Errorf("stream: changelog topic %q has %d partitions and the input topic %q %d: they must be co-partitioned (add partitions to the changelog, or name a new one with --changelog-topic)",
			c.topic, n, input, in)
	}
	resp, err := c.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: c.topic, ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil {
		return fmt.Errorf("stream: reading the configuration of changelog topic %q: %w", c.topic, err)
	}
	policy := ""
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("stream: reading the configuration of changelog topic %q: %w", c.topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				policy = e.ConfigValue
			}
		}
	}
	if !slices.Contains(strings.Split(policy, ","), "compact") {
		return fmt.Errorf("stream: changelog topic %q has cleanup.policy %q: it must be compacted, or retention deletes the state it holds "+
			"(kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact)",
			c.topic, policy, c.topic)
	}
	return nil
}

// restored is what a restore read.
type restored struct {
	// token is the highest fencing token read, stale records aside.
	token int64
	// pos is the changelog offset after the last commit marker, where
	// reading resumes, and posToken the highest token before it.
	pos, posToken int64
	// end is the offset the restore read to; tail reports whether
	// records of an unfinished commit lie between pos and end.
	end  int64
	tail bool
}

// restore brings partition p of db up to the changelog when db lacks the
// partition or holds an older commit of it. local is the next input
// offset db's commit point holds, -1 for none. When db's state is where
// an earlier restore or commit left it (its restore position), restore
// reads only the records written since; otherwise it rebuilds the
// partition from the whole changelog. A standby restore, which keeps a
// partition this instance does not own warm, logs at debug level and
// counts its records apart.
//
// Only whole commits are applied: the records after the last commit
// marker belong to a commit whose writer stopped before finishing it, and
// are discarded. Records of a fenced writer (see changelog) are ignored.
func (c *changelog) restore(ctx context.Context, db *state.DB, p int32, local int64, standby bool) (restored, error) {
	first, end, err := c.offsets(ctx, p)
	if err != nil {
		return restored{}, err
	}
	pos, at, token, ok, err := readPosition(db, p)
	if err != nil {
		return restored{}, err
	}
	if !ok || at != local {
		pos, token = first, 0
	}
	done := restored{token: token, pos: end, posToken: token, end: end}
	if end <= first {
		return done, nil
	}
	from, mode := first, "full"
	switch {
	case ok && at == local && pos >= first && pos <= end:
		if pos == end {
			return done, nil
		}
		from, mode = pos, "incremental"
	case local >= 0:
		// A store whose commits did not go to this changelog (written
		// without it, or before restore positions existed).
		last, err := c.read(ctx, p, end-1, end, nil)
		if err != nil {
			return restored{}, err
		}
		if bytes.Equal(last.Key, pipeline.CommitPointKey(nil, p)) {
			logged, err := pipeline.CommitOffset(p, last.Value)
			if err != nil {
				return restored{}, err
			}
			switch {
			case logged == local:
				return done, nil
			case local > logged:
				c.log.Warn("local state is ahead of the changelog; keeping it", "partition", p, "local_offset", local, "changelog_offset", logged)
				return done, nil
			}
		}
	}
	level := slog.LevelInfo
	if standby {
		level = slog.LevelDebug
	}
	started := time.Now()
	c.log.Log(ctx, level, "restoring partition from the changelog", "partition", p, "mode", mode,
		"records", end-from, "local_offset", local)
	a, err := c.replay(ctx, db, p, from, end, token, mode == "full", standby)
	if errors.Is(err, errUnconfirmed) {
		// Writes read after the last commit marker overflowed the staging
		// bound and reached the store before it was known that no marker
		// followed them: rebuild the partition up to that marker.
		c.log.Warn("the changelog ends with a large unfinished commit; rebuilding the partition up to the last whole commit",
			"partition", p, "records", end-a.pos)
		mode = "full"
		_, err = c.replay(ctx, db, p, first, max(a.pos, first), 0, true, standby)
	}
	if err != nil {
		return restored{}, fmt.Errorf("stream: restoring partition %d from %s: %w", p, c.topic, err)
	}
	if a.stale > 0 {
		c.log.Warn("ignored changelog records a fenced owner wrote after the partition moved on", "partition", p, "records", a.stale)
	}
	c.m.restores.WithLabelValues(mode).Inc()
	if !standby {
		c.m.restoreSeconds.Observe(time.Since(started).Seconds())
	}
	c.log.Log(ctx, level, "partition restored", "partition", p, "mode", mode, "records", end-from,
		"unfinished", a.pending, "seconds", time.Since(started).Seconds())
	return restored{token: a.token, pos: a.pos, posToken: a.posToken, end: end, tail: a.pending > 0}, nil
}

// errUnconfirmed reports a replay that wrote records the changelog turned
// out to hold no commit marker for.
var errUnconfirmed = errors.New("stream: writes of an unfinished commit reached the store")

// replay applies changelog partition p's records from offset from to end
// to db, after deleting the partition from db when full is set, ignoring
// records of tokens below token and below the tokens read before them. It
// returns the restorer, whose pos is the offset after the last commit
// marker applied (from when none was).
func (c *changelog) replay(ctx context.Context, db *state.DB, p int32, from, end, token int64, full, standby bool) (*restorer, error) {
	a := &restorer{db: db, p: p, ttl: c.ttl, limit: c.stageLimit, log: c.log, chunks: map[string][]byte{},
		fence: pipeline.FenceKey(nil, p), pos: from, token: token, posToken: token}
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

// unfinished returns the keys of the records of partition p, from offset
// from to end, that a restore which stopped at from with token as its
// highest fencing token would discard as an unfinished commit.
func (c *changelog) unfinished(ctx context.Context, p int32, from, end, token int64) ([][]byte, error) {
	seen := map[string]bool{}
	var keys [][]byte
	fence := pipeline.FenceKey(nil, p)
	_, err := c.read(ctx, p, from, end, func(m kafka.Message) error {
		t := recordToken(&m)
		if t < token {
			return nil
		}
		token = t
		if !bytes.Equal(m.Key, fence) && !seen[string(m.Key)] {
			seen[string(m.Key)] = true
			keys = append(keys, m.Key)
		}
		return nil
	})
	return keys, err
}

// positionVersion is the encoding version of a restore position. Version
// 1 positions, without a token, are read as missing.
const positionVersion = 2

// appendPosition appends the encoding of a restore position to dst: the
// changelog offset after the last commit marker applied, the input offset
// that marker commits and the highest fencing token read before it.
func appendPosition(dst []byte, pos, at, token int64) []byte {
	dst = append(dst, positionVersion)
	dst = binary.AppendVarint(dst, pos)
	dst = binary.AppendVarint(dst, at)
	return binary.AppendVarint(dst, token)
}

// readPosition returns where the last restore or commit of partition p
// left the changelog (see appendPosition).
func readPosition(db *state.DB, p int32) (pos, at, token int64, ok bool, err error) {
	ok, err = db.Get(pipeline.RestorePositionKey(nil, p), func(v []byte) error {
		if len(v) > 0 && v[0] < positionVersion {
			return errOldPosition
		}
		if len(v) < 1 || v[0] != positionVersion {
			return fmt.Errorf("stream: partition %d restore position has unknown encoding version %v (this build reads %d)", p, v[:min(len(v), 1)], positionVersion)
		}
		v = v[1:]
		for _, dst := range []*int64{&pos, &at, &token} {
			n := 0
			if *dst, n = binary.Varint(v); n <= 0 {
				return fmt.Errorf("stream: partition %d restore position is corrupt", p)
			}
			v = v[n:]
		}
		return nil
	})
	if errors.Is(err, errOldPosition) {
		return 0, 0, 0, false, nil
	}
	return pos, at, token, ok, err
}

var errOldPosition = errors.New("stream: restore position of an older version")

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
// and dropped if none does. It ignores records stamped with a lower
// fencing token than one read before them.
type restorer struct {
	db     *state.DB
	p      int32
	ttl    time.Duration
	limit  int
	log    *slog.Logger
	fence  []byte
	b      state.Batch
	mark   state.Mark        // b's writes after mark await their commit marker
	chunks map[string][]byte // by chunk key, until their descriptor
	key    []byte

	// unconfirmed is set while writes that no marker has confirmed yet
	// are in the store, because they overflowed limit.
	unconfirmed bool
	// pending counts the records read since the last marker, stale ones
	// aside, and stale the records ignored.
	pending, stale int
	// token is the highest fencing token read; posToken was the highest
	// at the last marker.
	token, posToken int64
	// pos is the changelog offset after the last commit marker applied,
	// whose input offset is at; marked reports whether one was.
	pos, at int64
	marked  bool
}

func (a *restorer) apply(m kafka.Message) error {
	t := recordToken(&m)
	if t < a.token {
		a.stale++
		return nil
	}
	a.token = t
	if bytes.Equal(m.Key, a.fence) {
		return nil // a fence only raises the token
	}
	a.pending++
	if chunk, legacy := chunkKind(m.Key); chunk || legacy {
		if chunk && len(m.Value) > 0 {
			a.chunks[string(m.Key)] = bytes.Clone(m.Value)
		} else {
			delete(a.chunks, string(m.Key))
		}
		return nil
	}
	value := m.Value
	for _, h := range m.Headers {
		switch h.Key {
		case chunkedHeader:
			var err error
			if value, err = a.assemble(m.Key, m.Value); err != nil {
				a.log.Warn("skipping a chunked value of the changelog; the key keeps its previous value, if any",
					"partition", a.p, "key", fmt.Sprintf("%x", m.Key), "offset", m.Offset, "err", err)
				return nil
			}
		case legacyChunkHeader:
			a.log.Warn("skipping a chunked value an older build wrote; the key keeps its previous value, if any",
				"partition", a.p, "key", fmt.Sprintf("%x", m.Key), "offset", m.Offset)
			return nil
		}
	}
	r, err := pipeline.ApplyRestored(&a.b, a.p, m.Key, value, a.ttl)
	if err != nil {
		return fmt.Errorf("record %d: %w", m.Offset, err)
	}
	switch {
	case r.CommitPoint:
		a.pos, a.at, a.posToken, a.marked = m.Offset+1, r.Next, a.token, true
		a.pending = 0
		clear(a.chunks) // a commit writes a value's chunks before its descriptor
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

// assemble returns the value a descriptor under key describes, from the
// chunks read before it, after checking it against the descriptor's
// digest.
func (a *restorer) assemble(key, descriptor []byte) ([]byte, error) {
	d, err := parseDescriptor(descriptor)
	if err != nil {
		return nil, err
	}
	value := make([]byte, 0, d.size)
	for i := range d.n {
		a.key = chunkKey(a.key[:0], key, &d, i)
		part, ok := a.chunks[string(a.key)]
		if !ok {
			return nil, fmt.Errorf("chunk %d of %d is missing", i, d.n)
		}
		value = append(value, part...)
		delete(a.chunks, string(a.key))
	}
	if len(value) != d.size || sha256.Sum256(value) != d.digest {
		return nil, errors.New("the chunks do not match the descriptor's digest")
	}
	return value, nil
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
	if a.marked {
		a.b.SetFinal(pipeline.RestorePositionKey(nil, a.p), appendPosition(nil, a.pos, a.at, a.posToken), 0)
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
