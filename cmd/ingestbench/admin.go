package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// admin measures and cleans up the topics a run writes. It speaks
// franz-go's kmsg, because kafka-go has no DescribeLogDirs.
//
// Bytes are what the broker stores: kfake's log size of a partition is the
// sum of its RecordBatch wire sizes as produced (batch headers, record
// framing, keys, values and headers, after any producer compression).
// kfake compacts and applies retention only hourly (log.cleaner.backoff.ms),
// so within a run a topic's size only grows, except where a trimmer
// deletes records.
type admin struct {
	cl *kgo.Client
}

func newAdmin(brokers string) (*admin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return &admin{cl: cl}, nil
}

func (a *admin) close() { a.cl.Close() }

// partSizes returns the stored bytes of every partition of the given
// topics, by topic and partition; topics the broker lacks are absent.
func (a *admin) partSizes(ctx context.Context, topics ...string) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("describing log dirs: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("describing log dirs: %w", err)
	}
	out := map[string]map[int32]int64{}
	for _, d := range resp.Dirs {
		for _, t := range d.Topics {
			if !slices.Contains(topics, t.Topic) {
				continue
			}
			if out[t.Topic] == nil {
				out[t.Topic] = map[int32]int64{}
			}
			for _, p := range t.Partitions {
				out[t.Topic][p.Partition] += p.Size
			}
		}
	}
	return out, nil
}

// sizes returns the stored bytes of each of the given topics.
func (a *admin) sizes(ctx context.Context, topics ...string) (map[string]int64, error) {
	parts, err := a.partSizes(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for t, ps := range parts {
		for _, n := range ps {
			out[t] += n
		}
	}
	return out, nil
}

// ends returns the end offset of every partition of the given topics.
func (a *admin) ends(ctx context.Context, topics ...string) (map[string]map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(t)
		meta.Topics = append(meta.Topics, mt)
	}
	mresp, err := meta.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("reading metadata: %w", err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	for _, t := range mresp.Topics {
		if t.ErrorCode != 0 || t.Topic == nil {
			continue // not created (yet)
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = *t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp = -1 // the end
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	out := map[string]map[int32]int64{}
	if len(req.Topics) == 0 {
		return out, nil
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	for _, t := range resp.Topics {
		out[t.Topic] = map[int32]int64{}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("listing offsets of %s/%d: %w", t.Topic, p.Partition, err)
			}
			out[t.Topic][p.Partition] = p.Offset
		}
	}
	return out, nil
}

// deleteRecords deletes the records of each topic partition before the
// given offsets.
func (a *admin) deleteRecords(ctx context.Context, before map[string]map[int32]int64) error {
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 10000
	for _, t := range slices.Sorted(maps.Keys(before)) {
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = t
		for p, off := range before[t] {
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition, rp.Offset = p, off
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return fmt.Errorf("deleting records: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("deleting records of %s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// deleteTopics deletes the given topics, ignoring those that do not exist.
func (a *admin) deleteTopics(ctx context.Context, topics ...string) error {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = 10000
	req.TopicNames = topics
	for _, t := range topics {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return fmt.Errorf("deleting topics: %w", err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			return fmt.Errorf("deleting topic %q: %w", name, err)
		}
	}
	return nil
}

// trimmer bounds the broker's memory on long runs, as retention would: each
// trim adds the stored bytes of its topics to running totals and deletes
// the records stored so far. It reads the end offsets first and the sizes
// second, so records produced between the two requests (milliseconds
// apart) are counted twice: the totals can only err high, by that much.
type trimmer struct {
	a       *admin
	topics  []string
	trimmed map[string]int64
	trims   int
}

func newTrimmer(a *admin, topics ...string) *trimmer {
	return &trimmer{a: a, topics: topics, trimmed: map[string]int64{}}
}

// trim counts and deletes what the topics hold.
func (t *trimmer) trim(ctx context.Context) error {
	ends, err := t.a.ends(ctx, t.topics...)
	if err != nil {
		return err
	}
	sizes, err := t.a.sizes(ctx, t.topics...)
	if err != nil {
		return err
	}
	if err := t.a.deleteRecords(ctx, ends); err != nil {
		return err
	}
	for topic, n := range sizes {
		t.trimmed[topic] += n
	}
	t.trims++
	return nil
}

// totals returns the bytes each topic has stored since the trimmer
// started: what it trimmed plus what the topic holds now.
func (t *trimmer) totals(ctx context.Context) (map[string]int64, error) {
	sizes, err := t.a.sizes(ctx, t.topics...)
	if err != nil {
		return nil, err
	}
	for topic, n := range t.trimmed {
		sizes[topic] += n
	}
	return sizes, nil
}
