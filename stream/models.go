package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/pipeline"
)

// models is a processor's end of the models topic, the compacted topic
// through which the partitions' learners mix (see pipeline.Mixer): one
// partition, one record per mixing round of each input partition's
// learner, keyed "partition/learner", whose value is the learner's
// snapshot (model.Snapshot) and whose "mixed" header lists the peer
// snapshots the partition mixed in at that round. Instances on other
// machines join through the topic alone.
//
// A follower goroutine, owned by the processor's Run, reads the topic from
// its start and keeps in memory the latest keepSnapshots snapshots and
// rounds of every partition and learner. A task mixes, of every other
// partition, the latest snapshot the follower holds, and records its
// choice in its own record before mixing; a task that replays a round it
// had published before a crash (or before its partition moved) mixes the
// very snapshots its record names, so the replay ends at the same weights.
// Traffic: each partition writes one snapshot per learner and round
// (model.Snapshot.EncodedLen, about 16 bytes per parameter with the
// averaged weights) and each instance reads every partition's.
type models struct {
	topic string
	conn  *Connection
	w     *kafka.Writer
	log   *slog.Logger

	mu    sync.Mutex
	next  int64 // the offset the follower reads next
	err   error // why the follower stopped, if it did
	snaps map[modelKey][]*model.Snapshot
	marks map[modelKey][]mixMark
	stats modelStats

	published, read, replayed prometheus.Counter // bytes, bytes, rounds
}

// modelKey names one partition's learner.
type modelKey struct {
	partition int32
	learner   string
}

// mixMark is what a partition's record of a round says it mixed.
type mixMark struct {
	round int64
	peers []pipeline.PeerVersion
}

// modelStats count the models topic's traffic.
type modelStats struct {
	published, read           int64 // records
	publishedBytes, readBytes int64
	replayed, missing         int64 // rounds mixed from a record; peers it named that were gone
}

// keepSnapshots is how many snapshots (and rounds) of each partition's
// learner the follower keeps: a partition replaying a round mixes the peer
// snapshots it chose then, as long as at most this many have followed.
const keepSnapshots = 8

// mixedHeader names the header that lists the peers a round mixed.
const mixedHeader = "mixed"

func newModels(conn *Connection, topic string, log *slog.Logger, reg prometheus.Registerer) *models {
	w := conn.Writer(topic)
	w.MaxAttempts = 5
	w.BatchBytes = 64 << 20 // a snapshot is one message, whatever its size
	// Everything goes to partition 0, which the followers read, even when
	// the brokers auto-created the topic with more partitions.
	w.Balancer = kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })
	f := factory{reg}
	return &models{topic: topic, conn: conn, w: w, log: log.With("component", "models"),
		snaps: map[modelKey][]*model.Snapshot{}, marks: map[modelKey][]mixMark{},
		published: f.counter("models_published_bytes_total", "Bytes of learner snapshots this instance's partitions published to the models topic."),
		read:      f.counter("models_read_bytes_total", "Bytes of learner snapshots read from the models topic."),
		replayed:  f.counter("models_replayed_rounds_total", "Mixing rounds replayed with the peer snapshots their record names (after a crash or a move)."),
	}
}

// ensure creates the models topic, compacted with one partition, when it
// does not exist.
func (ms *models) ensure(ctx context.Context, replication int) error {
	client := ms.conn.Client()
	exists, err := topicPartitions(ctx, client, []string{ms.topic})
	if err != nil || exists[ms.topic] > 0 {
		return err
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: ms.topic, NumPartitions: 1, ReplicationFactor: replicas(replication),
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err == nil {
		err = resp.Errors[ms.topic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("stream: creating models topic %q: %w", ms.topic, err)
	}
	return nil
}

// follow reads the models topic from its start until ctx ends.
func (ms *models) follow(ctx context.Context) {
	r := kafka.NewReader(ms.conn.ReaderConfig(ms.topic, 0))
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		ms.stop(err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				ms.stop(ctx.Err())
				return
			}
			ms.log.Warn("reading the models topic", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ms.add(&m)
	}
}

func (ms *models) stop(err error) {
	ms.mu.Lock()
	ms.err = err
	ms.mu.Unlock()
}

// add takes in one record of the models topic.
func (ms *models) add(m *kafka.Message) {
	s := &model.Snapshot{}
	err := s.UnmarshalBinary(m.Value)
	var peers []pipeline.PeerVersion
	if err == nil {
		peers, err = decodePeers(headerValue(m, mixedHeader))
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.next = m.Offset + 1
	if err != nil {
		ms.log.Warn("skipping a models record", "offset", m.Offset, "key", string(m.Key), "err", err)
		return
	}
	ms.stats.read++
	ms.stats.readBytes += int64(len(m.Value))
	ms.read.Add(float64(len(m.Value)))
	k := modelKey{s.Partition, s.Learner}
	ms.snaps[k] = keepLast(append(ms.snaps[k], s))
	ms.marks[k] = keepLast(append(ms.marks[k], mixMark{round: s.Round, peers: peers}))
}

func keepLast[T any](s []T) []T {
	if len(s) > keepSnapshots {
		return append(s[:0], s[len(s)-keepSnapshots:]...)
	}
	return s
}

// catchUp waits until the follower has read the models topic to the end
// it has now, so that a task sees every round its partition published.
func (ms *models) catchUp(ctx context.Context) error {
	conn, err := ms.conn.DialLeader(ctx, ms.topic, 0)
	if err != nil {
		return fmt.Errorf("stream: reaching the models topic: %w", err)
	}
	_, end, err := conn.ReadOffsets()
	conn.Close()
	if err != nil {
		return fmt.Errorf("stream: reading the end of the models topic: %w", err)
	}
	for {
		ms.mu.Lock()
		next, ferr := ms.next, ms.err
		ms.mu.Unlock()
		if next >= end {
			return nil
		}
		if ferr != nil {
			return fmt.Errorf("stream: the models topic's follower stopped: %w", ferr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forTask returns the pipeline.Mixer of one task of partition p, whose
// blocking calls end with ctx.
func (ms *models) forTask(ctx context.Context, p int32) *taskMixer {
	return &taskMixer{ms: ms, ctx: ctx, p: p}
}

// taskMixer is a task's pipeline.Mixer. It belongs to the task's
// goroutine.
type taskMixer struct {
	ms     *models
	ctx    context.Context
	p      int32
	synced bool
	chosen []*model.Snapshot
	buf    []byte
}

var _ pipeline.Mixer = (*taskMixer)(nil)

// Publish implements pipeline.Mixer: it chooses the peers the round
// mixes, then writes the partition's snapshot with that choice, unless a
// record of the round exists, whose choice stands.
func (t *taskMixer) Publish(own *model.Snapshot) error {
	if !t.synced {
		if err := t.ms.catchUp(t.ctx); err != nil {
			return err
		}
		t.synced = true
	}
	if t.replay(own) {
		return nil
	}
	ms := t.ms
	ms.mu.Lock()
	t.chosen = t.chosen[:0]
	for k, list := range ms.snaps {
		if k.partition != t.p && k.learner == own.Learner && len(list) > 0 {
			t.chosen = append(t.chosen, list[len(list)-1])
		}
	}
	ms.mu.Unlock()
	sortByPartition(t.chosen)
	var err error
	if t.buf, err = own.AppendBinary(t.buf[:0]); err != nil {
		return err
	}
	msg := kafka.Message{Key: []byte(strconv.Itoa(int(t.p)) + "/" + own.Learner), Value: t.buf,
		Headers: []kafka.Header{{Key: mixedHeader, Value: encodePeers(t.chosen)}}}
	if err := ms.w.WriteMessages(t.ctx, msg); err != nil {
		return fmt.Errorf("stream: publishing to the models topic: %w", err)
	}
	ms.mu.Lock()
	ms.stats.published++
	ms.stats.publishedBytes += int64(len(t.buf))
	ms.published.Add(float64(len(t.buf)))
	ms.mu.Unlock()
	return nil
}

// replay reports whether the partition published own's round before (it
// replays it after a crash or a move), and if so chooses the peer
// snapshots that record names, those still held.
func (t *taskMixer) replay(own *model.Snapshot) bool {
	ms := t.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var mark *mixMark
	for i, m := range ms.marks[modelKey{t.p, own.Learner}] {
		if m.round == own.Round {
			mark = &ms.marks[modelKey{t.p, own.Learner}][i]
		}
	}
	if mark == nil {
		return false
	}
	t.chosen = t.chosen[:0]
	for _, pv := range mark.peers {
		var found *model.Snapshot
		for _, s := range ms.snaps[modelKey{pv.Partition, own.Learner}] {
			if s.Round == pv.Round && s.Version == pv.Version {
				found = s
			}
		}
		if found == nil {
			ms.stats.missing++
			ms.log.Warn("a replayed mixing round misses a peer snapshot it mixed; the replay leaves it out",
				"partition", t.p, "round", own.Round, "peer", pv.Partition, "peer_round", pv.Round)
			continue
		}
		t.chosen = append(t.chosen, found)
	}
	ms.stats.replayed++
	ms.replayed.Inc()
	return true
}

// Peers implements pipeline.Mixer: the snapshots Publish chose.
func (t *taskMixer) Peers(int32, string, int64) ([]*model.Snapshot, error) { return t.chosen, nil }

func sortByPartition(s []*model.Snapshot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Partition < s[j-1].Partition; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// encodePeers encodes the peer versions of snaps: per peer, its
// partition, round and version as varints.
func encodePeers(snaps []*model.Snapshot) []byte {
	b := []byte{}
	for _, s := range snaps {
		b = binary.AppendVarint(b, int64(s.Partition))
		b = binary.AppendVarint(b, s.Round)
		b = binary.AppendVarint(b, s.Version)
	}
	return b
}

func decodePeers(v string) ([]pipeline.PeerVersion, error) {
	b := []byte(v)
	var out []pipeline.PeerVersion
	for len(b) > 0 {
		var x [3]int64
		for i := range x {
			n := 0
			x[i], n = binary.Varint(b)
			if n <= 0 {
				return nil, errors.New("stream: corrupt mixed header")
			}
			b = b[n:]
		}
		out = append(out, pipeline.PeerVersion{Partition: int32(x[0]), Round: x[1], Version: x[2]})
	}
	return out, nil
}

// close closes the writer.
func (ms *models) close() error { return ms.w.Close() }

// modelsTopic returns the models topic of a group.
func modelsTopic(group string) string { return strings.TrimSpace(group) + ".models" }
