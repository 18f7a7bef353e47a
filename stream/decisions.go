package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// Decisions on the Kafka side: a task publishes each series' plan to the
// replenishment topic and each close's ranking per store to the trends
// topic, and keeps the latest of both in its commit for the HTTP API; the
// processor reads the catalog and inventory topics into a table the
// engines consult (see pipeline.CatalogTable).

// closedDecision publishes the plan of a close's decision, if it has one,
// to the replenishment topic, keyed by series id, and, as the series'
// latest, into the state batch.
func (t *task) closedDecision(c *pipeline.Close) {
	d := c.Decision
	if d == nil || !d.HasPlan {
		return
	}
	rec := decision.PlanRecord{Series: c.Series.ID(), Bucket: t.proc.cfg.Window.Width.String(),
		Origin: t.eng.Spec().Start(c.Bucket), GeneratedAt: c.GeneratedAt, Model: c.Model,
		Method: d.Method, Levels: d.Levels, Policy: d.Policy, Stock: d.Stock, Plan: &d.Plan}
	start := len(t.arena)
	t.arena = rec.AppendJSON(t.arena)
	value := t.arena[start:len(t.arena):len(t.arena)]
	t.out = append(t.out, kafka.Message{Topic: t.proc.cfg.ReplenishmentTopic, Key: []byte(rec.Series), Value: value})
	t.key = pipeline.PlanKey(t.key[:0], t.partition, rec.Series)
	t.batch.Set(t.key, value)
	t.proc.m.plans.Inc()
	if d.Plan.HasOrder && d.Plan.Order > 0 {
		t.proc.m.orders.Inc()
	}
}

// Ranked implements pipeline.RankingSink: one trends record per store of
// the close goes to the trends topic, keyed by store, with empty classes
// where none of its series ranks, and, as the store's latest in the
// partition, into the state batch.
func (t *task) Ranked(bucket int64, generatedAt time.Time, stores []string, r *decision.Ranking) error {
	rec := decision.TrendsRecord{Partition: t.partition, Bucket: t.proc.cfg.Window.Width.String(),
		Origin: t.eng.Spec().Start(bucket), GeneratedAt: generatedAt, Window: t.proc.trendWindow}
	for _, store := range stores {
		rec.Store = store
		for i, c := range decision.Classes {
			rec.Top[i] = r.Top(rec.Top[i][:0], store, c)
			t.proc.m.trending.WithLabelValues(c.String()).Add(float64(len(rec.Top[i])))
		}
		start := len(t.arena)
		t.arena = rec.AppendJSON(t.arena)
		value := t.arena[start:len(t.arena):len(t.arena)]
		t.out = append(t.out, kafka.Message{Topic: t.proc.cfg.TrendsTopic, Key: []byte(store), Value: value})
		t.key = pipeline.TrendsKey(t.key[:0], t.partition, store)
		t.batch.Set(t.key, value)
		t.proc.m.trends.Inc()
	}
	return nil
}

// sideTopic is a compacted topic read whole into the catalog table.
type sideTopic struct {
	name  string
	apply func(key, value []byte) error
	label string // of the metrics
}

// followSides reads the catalog and inventory topics into the catalog
// table, and the plans topic into the plans table, until ctx ends, closing caught once every partition of both has
// been read to the end it had at the start. Bad records go to the
// dead-letter topic. It returns when every reader has stopped.
func (p *Processor) followSides(ctx context.Context, caught chan<- struct{}) {
	var sides []sideTopic
	if p.catalog != nil && p.cfg.CatalogTopic != "" {
		sides = append(sides, sideTopic{p.cfg.CatalogTopic, p.catalog.ApplyCatalog, "catalog"})
	}
	if p.catalog != nil && p.cfg.InventoryTopic != "" {
		sides = append(sides, sideTopic{p.cfg.InventoryTopic, p.catalog.ApplyInventory, "inventory"})
	}
	if p.plans != nil {
		sides = append(sides, sideTopic{p.cfg.PlansTopic, p.plans.Apply, "plans"})
	}
	var wg, start sync.WaitGroup
	for _, s := range sides {
		ends, err := p.endOffsets(ctx, s.name)
		for err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("reading the end offsets of a side topic", "topic", s.name, "err", err)
			if newBackoff(time.Second, time.Second).wait(ctx) {
				ends, err = p.endOffsets(ctx, s.name)
			}
		}
		if ctx.Err() != nil {
			break
		}
		for part, end := range ends {
			start.Add(1)
			wg.Go(func() { p.followSide(ctx, s, part, end, start.Done) })
		}
	}
	start.Wait()
	close(caught)
	wg.Wait()
}

// endOffsets returns, per partition of topic, the offset reading must
// reach to have read what the topic held: its end, or -1 when the
// partition holds nothing.
func (p *Processor) endOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	n, err := p.cfg.Connection.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for part := range n {
		req.Topics[topic] = append(req.Topics[topic], kafka.FirstOffsetOf(part), kafka.LastOffsetOf(part))
	}
	resp, err := p.cfg.Connection.Client().ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("stream: listing the offsets of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("stream: listing the offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
		if po.LastOffset <= po.FirstOffset {
			ends[po.Partition] = -1
		}
	}
	return ends, nil
}

// followSide reads one partition of a side topic from its start until ctx
// ends, calling caught once it has read up to end.
func (p *Processor) followSide(ctx context.Context, s sideTopic, part int, end int64, caught func()) {
	var once sync.Once
	defer once.Do(caught)
	if end < 0 {
		once.Do(caught)
	}
	r := kafka.NewReader(p.cfg.Connection.ReaderConfig(s.name, part))
	defer r.Close()
	if p.sideDelay > 0 && !newBackoff(p.sideDelay, p.sideDelay).wait(ctx) {
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.cfg.Logger.Warn("reading a side topic", "topic", s.name, "partition", part, "err", err)
			if !newBackoff(time.Second, time.Second).wait(ctx) {
				return
			}
			continue
		}
		if err := s.apply(m.Key, m.Value); err != nil {
			p.m.sideRejected.WithLabelValues(s.label).Inc()
			p.sideDeadLetter(ctx, &m, err)
		} else {
			p.m.sideApplied.WithLabelValues(s.label).Inc()
		}
		if m.Offset+1 >= end {
			once.Do(caught)
		}
	}
}

// sideDeadLetter sends a rejected side-topic record to the dead-letter
// topic with its reason, detail and source, as a task does with sales.
func (p *Processor) sideDeadLetter(ctx context.Context, m *kafka.Message, err error) {
	var inv *pipeline.InvalidError
	if !errors.As(err, &inv) {
		inv = &pipeline.InvalidError{Reason: pipeline.ReasonInvalidField, Detail: err.Error()}
	}
	dl := kafka.Message{Topic: p.cfg.DLQTopic, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: hdrReason, Value: []byte(inv.Reason)},
		{Key: hdrDetail, Value: []byte(inv.Detail)},
		{Key: hdrSource, Value: fmt.Appendf(nil, "%s/%d/%d", m.Topic, m.Partition, m.Offset)},
	}}
	boundDeadLetter(&dl, p.cfg.DLQMaxBytes)
	p.m.dlq.WithLabelValues(string(inv.Reason)).Inc()
	if err := p.writer.WriteMessages(ctx, dl); err != nil && ctx.Err() == nil {
		p.cfg.Logger.Warn("writing a side topic's dead letter", "source", headerValue(&dl, hdrSource), "err", writeError(err))
	}
}

// TrendingResponse is the body of GET /v1/trending.
type TrendingResponse struct {
	// Store is the store asked for, "" for all.
	Store string `json:"store"`
	// Partitions are the input partitions this instance serves, whose
	// latest trends records were merged.
	Partitions []int32 `json:"partitions"`
	// Origin is the latest close among the merged records, null if none.
	Origin *time.Time `json:"origin"`
	// Classes maps each class asked for to its best series, best first.
	Classes map[string][]TrendingSeries `json:"classes"`
}

// TrendingSeries is a series in a TrendingResponse.
type TrendingSeries struct {
	Series    string   `json:"series"`
	Store     string   `json:"store"`
	SKU       string   `json:"sku"`
	Partition int32    `json:"partition"`
	Score     float64  `json:"score"`
	Last      float64  `json:"last"`
	Reference float64  `json:"reference"`
	Next      float64  `json:"next"`
	ChangePct *float64 `json:"change_pct"`
}

// trendsJSON is the part of a trends record the API reads back.
type trendsJSON struct {
	Store     string                      `json:"store"`
	Partition int32                       `json:"partition"`
	Origin    time.Time                   `json:"origin"`
	Classes   map[string][]TrendingSeries `json:"classes"`
}

// maxTrendingLimit bounds the limit parameter of GET /v1/trending.
const maxTrendingLimit = 1000

// Trending merges the latest trends records of the partitions this
// instance serves, for one store or all (""), and returns the best limit
// series of each class asked for (all when classes is empty), best first.
// With several instances a client asks every instance and merges the
// answers the same way (by score, each series once), as each serves its
// own partitions.
func (p *Processor) Trending(store string, classes []decision.Class, limit int) (*TrendingResponse, error) {
	if len(classes) == 0 {
		classes = decision.Classes
	}
	resp := &TrendingResponse{Store: store, Partitions: p.Partitions(), Classes: map[string][]TrendingSeries{}}
	slices.Sort(resp.Partitions)
	lists := make(map[decision.Class][][]decision.Ranked)
	meta := map[string]TrendingSeries{} // series -> its record fields
	err := p.db.View(func(st *state.Snapshot) error {
		for _, part := range resp.Partitions {
			read := func(v []byte) error {
				var rec trendsJSON
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("stream: partition %d's trends record: %w", part, err)
				}
				if resp.Origin == nil || rec.Origin.After(*resp.Origin) {
					o := rec.Origin
					resp.Origin = &o
				}
				for _, c := range classes {
					var l []decision.Ranked
					for _, e := range rec.Classes[c.String()] {
						e.Store, e.Partition = rec.Store, rec.Partition
						meta[e.Series+"\x00"+c.String()] = e
						l = append(l, decision.Ranked{Series: e.Series, Trend: decision.Trend{Class: c, Score: e.Score}})
					}
					lists[c] = append(lists[c], l)
				}
				return nil
			}
			if store != "" {
				if _, err := st.Get(pipeline.TrendsKey(nil, part, store), read); err != nil {
					return err
				}
				continue
			}
			if err := st.Scan(pipeline.TrendsPrefix(nil, part), func(_, v []byte) error { return read(v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range classes {
		out := []TrendingSeries{}
		for _, e := range decision.Merge(nil, limit, lists[c]...) {
			out = append(out, meta[e.Series+"\x00"+c.String()])
		}
		resp.Classes[c.String()] = out
	}
	return resp, nil
}

func (p *Processor) serveTrending(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var classes []decision.Class
	if s := q.Get("class"); s != "" {
		for name := range strings.SplitSeq(s, ",") {
			c, err := decision.ParseClass(name)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			classes = append(classes, c)
		}
	}
	limit := 10
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxTrendingLimit {
			http.Error(w, fmt.Sprintf("limit %q is not an integer in [1, %d]", s, maxTrendingLimit), http.StatusBadRequest)
			return
		}
		limit = n
	}
	resp, err := p.Trending(q.Get("store"), classes, limit)
	if err != nil {
		p.cfg.Logger.Error("serving trending", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, p, resp)
}

// Replenishment returns the latest replenishment plan record of series
// id ("STORE/SKU"), if a partition this instance serves holds it.
func (p *Processor) Replenishment(id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := p.db.View(func(st *state.Snapshot) error {
		part, found, err := pipeline.SeriesPartition(st, []byte(id))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("series %q: %w", id, ErrNotFound)
		}
		if !p.Owns(part) {
			return fmt.Errorf("series %q: partition %d is not served by this instance: %w", id, part, ErrNotFound)
		}
		found, err = st.Get(pipeline.PlanKey(nil, part, id), func(v []byte) error {
			out = append(json.RawMessage(nil), v...)
			return nil
		})
		if err == nil && !found {
			err = fmt.Errorf("series %q has no replenishment plan yet: %w", id, ErrNotFound)
		}
		return err
	})
	return out, err
}

func (p *Processor) serveReplenishment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("store") + "/" + r.PathValue("sku")
	resp, err := p.Replenishment(id)
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		p.cfg.Logger.Error("serving replenishment", "series", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(resp, '\n'))
}

func writeJSON(w http.ResponseWriter, p *Processor, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		p.cfg.Logger.Debug("writing a response", "err", err)
	}
}

// ensureDecisionTopics creates the missing decision topics with as many
// partitions as the input: the trends topic with the brokers' default
// cleanup policy, the others compacted.
func (p *Processor) ensureDecisionTopics(ctx context.Context) error {
	return p.ensureSideTopics(ctx, "decision", []string{p.cfg.ReplenishmentTopic, p.cfg.CatalogTopic, p.cfg.InventoryTopic},
		[]string{p.cfg.TrendsTopic})
}

// ensureSideTopics creates those of the compacted and the deleted (the
// broker's default cleanup policy) topics that are missing, with as many
// partitions as the input; empty names are skipped. what names them in
// errors.
func (p *Processor) ensureSideTopics(ctx context.Context, what string, compacted, deleted []string) error {
	compacted = slices.DeleteFunc(slices.Clone(compacted), func(t string) bool { return t == "" })
	topics := append(slices.Clone(compacted), slices.DeleteFunc(slices.Clone(deleted), func(t string) bool { return t == "" })...)
	client := p.cfg.Connection.Client()
	exists, err := topicPartitions(ctx, client, append([]string{p.cfg.InputTopic}, topics...))
	if err != nil {
		return err
	}
	missing := missingTopics(exists, topics)
	if err := checkCreateTopics(ctx, client, missing); err != nil || len(missing) == 0 {
		return err
	}
	partitions := exists[p.cfg.InputTopic]
	if partitions == 0 {
		partitions = p.cfg.Partitions
	}
	var create []kafka.TopicConfig
	for _, t := range missing {
		tc := kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replicas(p.cfg.ReplicationFactor)}
		if slices.Contains(compacted, t) {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		create = append(create, tc)
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
	if err != nil {
		return fmt.Errorf("stream: creating the %s topics: %w", what, err)
	}
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("stream: creating topic %q: %w", topic, err)
		}
	}
	return nil
}
