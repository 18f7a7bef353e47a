package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/trendstream/trendstream/decision"
	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/state"
)

// Processor consumes the input topic as a member of a consumer group and
// runs one task per assigned partition. Each task owns its partition's
// window and model state, so the per-record path takes no locks; the
// Processor only tracks which partitions are loaded (for readiness and the
// HTTP API) and the offsets to report to the group.
type Processor struct {
	cfg       Config
	db        *state.DB
	writer    *kafka.Writer
	changelog *changelog // nil when disabled
	models    *models    // nil when the learners do not mix
	m         *metrics
	// catalog holds the catalog and inventory topics' records when
	// decisions are on, else nil; trendWindow is the trend classifier's
	// window, for trends records.
	catalog     *pipeline.CatalogTable
	trendWindow int
	// plans holds the plans topic's records when promotions are on and
	// the topic is set, else nil.
	plans *pipeline.PlanTable

	mu        sync.Mutex
	inGen     bool
	assigned  map[int32]bool
	owned     map[int32]bool
	lastFatal error
	diskFull  map[int32]bool // partitions whose commit waits for disk space
	member    string         // the group member id, as stored
	// locks serialize a partition's task with the standby loop, which
	// writes the partitions no task of this instance holds.
	locks map[int32]*sync.Mutex

	// explain lends the partitions' engines to explanation requests.
	explain explainers

	// commitHook, when a test sets it, is called by tasks at each stage
	// of a commit.
	commitHook func(commitStage, int32)
	// sideDelay, when a test sets it, delays the catalog and inventory
	// readers' first fetch.
	sideDelay time.Duration
}

// New returns a Processor storing state in db, which the caller opens and
// closes.
func New(cfg Config, db *state.DB) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("stream: a state DB is required")
	}
	var catalog *pipeline.CatalogTable
	var trendWindow int
	if cfg.Decisions.On {
		catalog = pipeline.NewCatalogTable(cfg.Model.Horizon)
		cfg.Decisions.Catalog = catalog
		trends, err := decision.NewTrends(cfg.Decisions.Trend)
		if err != nil {
			return nil, err
		}
		trendWindow = trends.Config().Window
	}
	plans, err := newPlanTable(&cfg)
	if err != nil {
		return nil, err
	}
	p := &Processor{
		plans:    plans,
		cfg:      cfg,
		db:       db,
		m:        newMetrics(cfg.Registerer),
		assigned: make(map[int32]bool),
		owned:    make(map[int32]bool),
		diskFull: make(map[int32]bool),
		locks:    make(map[int32]*sync.Mutex),
		explain:  newExplainers(),
	}
	p.catalog, p.trendWindow = catalog, trendWindow
	if !cfg.NoChangelog {
		p.changelog = newChangelog(cfg.Connection, cfg.changelogTopic(), cfg.DedupTTL(), cfg.Logger, p.m)
	}
	if cfg.Mix.Every > 0 {
		p.models = newModels(&p.cfg.Connection, modelsTopic(cfg.Group), cfg.Logger, cfg.Registerer)
	}
	codec, _ := cfg.Compression.codec()
	if p.changelog != nil {
		p.changelog.w.Compression = codec
	}
	p.writer = cfg.Writer("")
	p.writer.Compression = codec
	p.writer.MaxAttempts = 3
	p.writer.Logger = kafkaLogger(cfg.Logger, slog.LevelDebug)
	p.writer.ErrorLogger = kafkaLogger(cfg.Logger, slog.LevelDebug)
	return p, nil
}

// Config returns the processor's configuration.
func (p *Processor) Config() Config { return p.cfg }

func kafkaLogger(l *slog.Logger, level slog.Level) kafka.Logger {
	return kafka.LoggerFunc(func(msg string, args ...any) {
		if l.Enabled(context.Background(), level) {
			l.Log(context.Background(), level, fmt.Sprintf(msg, args...), "component", "kafka-go")
		}
	})
}

// Run joins the consumer group and processes assigned partitions until
// ctx ends or a partition fails fatally (its state cannot be read or
// written), then shuts down in order and returns. It returns nil after a
// clean shutdown.
func (p *Processor) Run(ctx context.Context) error {
	if !p.cfg.NoCreateTopics {
		if err := p.ensureTopics(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	// The catalog and inventory are read whole before the first close.
	sideCtx, stopSides := context.WithCancel(ctx)
	defer stopSides()
	var sides sync.WaitGroup
	if p.catalog != nil || p.plans != nil {
		caught := make(chan struct{})
		sides.Go(func() { p.followSides(sideCtx, caught) })
		select {
		case <-caught:
		case <-ctx.Done():
			stopSides()
			sides.Wait()
			return nil
		}
	}
	p.removePredecessor(ctx)
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    p.cfg.Group,
		Brokers:               p.cfg.Brokers,
		Dialer:                p.cfg.Dialer(),
		Topics:                []string{p.cfg.InputTopic},
		SessionTimeout:        p.cfg.SessionTimeout,
		HeartbeatInterval:     min(time.Second, p.cfg.SessionTimeout/3),
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true,
		StartOffset:           kafka.FirstOffset,
		Logger:                kafkaLogger(p.cfg.Logger, slog.LevelDebug),
		ErrorLogger:           kafkaLogger(p.cfg.Logger, slog.LevelDebug),
	})
	if err != nil {
		stopSides()
		sides.Wait()
		return fmt.Errorf("stream: creating consumer group: %w", err)
	}
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var standby sync.WaitGroup
	if p.cfg.Standby && p.changelog != nil {
		standby.Go(func() { p.standbyLoop(runCtx) })
	}
	// The models topic's follower outlives the tasks, whose last batches
	// may still mix.
	followCtx, stopFollow := context.WithCancel(context.WithoutCancel(runCtx))
	defer stopFollow()
	var follower sync.WaitGroup
	if p.models != nil {
		follower.Go(func() { p.models.follow(followCtx) })
	}

	backoff := newBackoff(500*time.Millisecond, 10*time.Second)
	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			p.cfg.Logger.Warn("joining consumer group", "group", p.cfg.Group, "err", err)
			if !backoff.wait(runCtx) {
				break
			}
			continue
		}
		backoff.reset()
		p.startGeneration(gen, fail)
	}

	// Shutdown order: closing the group ends the generation, so every task
	// stops fetching, finishes its batch, writes its outputs, reports its
	// offset to the group, commits state and offset to Badger and returns;
	// the member then leaves the group. Only then is the writer closed.
	// The caller closes the DB after Run returns.
	p.cfg.Logger.Info("leaving consumer group", "group", p.cfg.Group)
	group.Close()
	p.setGeneration(nil)
	standby.Wait()
	stopSides() // the side readers write dead letters through the writer
	sides.Wait()
	stopFollow()
	follower.Wait()
	if err := p.writer.Close(); err != nil {
		p.cfg.Logger.Warn("closing writer", "err", err)
	}
	if p.models != nil {
		if err := p.models.close(); err != nil {
			p.cfg.Logger.Warn("closing models writer", "err", err)
		}
	}
	if p.changelog != nil {
		if err := p.changelog.close(); err != nil {
			p.cfg.Logger.Warn("closing changelog writer", "err", err)
		}
	}
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// startGeneration starts a task per assigned partition. The tasks report
// their committed offsets to the group themselves (see task.checkOwner).
func (p *Processor) startGeneration(gen *kafka.Generation, fail context.CancelCauseFunc) {
	assigned := gen.Assignments[p.cfg.InputTopic]
	parts := make([]int32, len(assigned))
	for i, a := range assigned {
		parts[i] = int32(a.ID)
	}
	p.cfg.Logger.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", parts)
	p.setGeneration(parts)
	if err := p.rememberMember(gen.MemberID); err != nil {
		p.cfg.Logger.Warn("storing the consumer-group member id", "err", err)
	}
	for _, part := range parts {
		gen.Start(func(ctx context.Context) {
			t, err := newTask(p, part, gen, gen.ID)
			if err == nil {
				err = t.run(ctx)
			}
			if err != nil {
				p.cfg.Logger.Error("partition failed", "partition", part, "err", err)
				p.setFatal(err)
				fail(err)
			}
		})
	}
}

// removePredecessor asks the group coordinator to remove the member the
// last process over this state store joined as, if it is still in the
// group: a process that was killed never left, and the group would wait
// for its session to time out before giving its partitions to anyone,
// this process included. The predecessor is dead: the store's directory
// lock keeps two processes from opening one store. kafka-go has no static
// membership (its consumer group joins with JoinGroup v1 or v2, which has
// no group.instance.id), which would give the same effect.
func (p *Processor) removePredecessor(ctx context.Context) {
	var member string
	found, err := p.db.Get(pipeline.MemberKey(nil), func(v []byte) error { member = string(v); return nil })
	if err != nil || !found {
		return
	}
	client := p.cfg.Client()
	if t, ok := client.Transport.(*kafka.Transport); ok {
		defer t.CloseIdleConnections()
	}
	resp, err := client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: p.cfg.Group, Members: []kafka.LeaveGroupRequestMember{{ID: member}}})
	if err == nil {
		err = resp.Error
	}
	if err == nil && len(resp.Members) == 1 {
		err = resp.Members[0].Error
	}
	if err != nil {
		p.cfg.Logger.Debug("removing this store's last consumer-group member", "member", member, "err", err)
		return
	}
	p.cfg.Logger.Info("removed the consumer-group member this store's last process left behind", "member", member)
}

// rememberMember stores the member id this process joined the group as,
// for removePredecessor.
func (p *Processor) rememberMember(member string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.member == member {
		return nil
	}
	var b state.Batch
	b.SetFinal(pipeline.MemberKey(nil), []byte(member), 0)
	if _, err := p.db.Commit(&b); err != nil {
		return err
	}
	p.member = member
	return nil
}

// ensureTopics creates missing topics, retrying while the brokers are
// unreachable. It fails at once, naming every missing topic, when the
// brokers do not offer CreateTopics.
func (p *Processor) ensureTopics(ctx context.Context) error {
	topics := []string{p.cfg.InputTopic, p.cfg.OutputTopic, p.cfg.DLQTopic}
	if p.changelog != nil {
		topics = append(topics, p.changelog.topic)
	}
	backoff := newBackoff(200*time.Millisecond, 5*time.Second)
	for {
		client := p.cfg.Connection.Client()
		exists, err := topicPartitions(ctx, client, topics)
		if err == nil {
			err = checkCreateTopics(ctx, client, missingTopics(exists, topics))
		}
		if err == nil {
			err = EnsureTopics(ctx, p.cfg.Connection, p.cfg.Partitions, p.cfg.ReplicationFactor, topics[:3]...)
		}
		if err == nil && p.changelog != nil {
			err = p.changelog.ensure(ctx, p.cfg.InputTopic, p.cfg.ReplicationFactor)
		}
		if err == nil && p.catalog != nil {
			err = p.ensureDecisionTopics(ctx)
		}
		if err == nil && p.plans != nil {
			err = p.ensurePlansTopic(ctx)
		}
		if err == nil && p.models != nil {
			err = p.models.ensure(ctx, p.cfg.ReplicationFactor)
		}
		if err == nil {
			return nil
		}
		var netErr net.Error
		if !errors.As(err, &netErr) && !errors.Is(err, kafka.BrokerNotAvailable) &&
			!errors.Is(err, kafka.LeaderNotAvailable) && !errors.Is(err, kafka.RequestTimedOut) {
			return err
		}
		p.cfg.Logger.Warn("waiting for brokers", "brokers", p.cfg.Brokers, "err", err)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

// EnsureTopics creates those of the topics that do not exist, with
// replication replicas, or the brokers' default when it is 0. The first
// topic gets partitions partitions when created; the others get as many as
// the first has. Brokers that do not offer CreateTopics make it fail with
// an error naming the missing topics.
func EnsureTopics(ctx context.Context, conn Connection, partitions, replication int, topics ...string) error {
	client := conn.Client()
	exists, err := topicPartitions(ctx, client, topics)
	if err != nil {
		return err
	}
	missing := missingTopics(exists, topics)
	if err := checkCreateTopics(ctx, client, missing); err != nil || len(missing) == 0 {
		return err
	}
	if n, ok := exists[topics[0]]; ok {
		partitions = n
	}
	var create []kafka.TopicConfig
	for _, t := range missing {
		create = append(create, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replicas(replication)})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
	if err != nil {
		return fmt.Errorf("stream: creating topics: %w", err)
	}
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("stream: creating topic %q: %w", topic, err)
		}
	}
	return nil
}

// replicas returns the replication factor to create a topic with: -1 asks
// the brokers for their default.
func replicas(replication int) int {
	if replication == 0 {
		return -1
	}
	return replication
}

// topicPartitions returns the partition count of each of the topics that
// exists.
func topicPartitions(ctx context.Context, client *kafka.Client, topics []string) (map[string]int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("stream: reading topic metadata: %w", err)
	}
	exists := make(map[string]int)
	for _, t := range meta.Topics {
		if t.Error == nil {
			exists[t.Name] = len(t.Partitions)
		}
	}
	return exists, nil
}

// missingTopics returns those of the topics exists lacks.
func missingTopics(exists map[string]int, topics []string) []string {
	var missing []string
	for _, t := range topics {
		if _, ok := exists[t]; !ok {
			missing = append(missing, t)
		}
	}
	return missing
}

// checkCreateTopics returns an error naming the missing topics to create
// by hand when the brokers do not offer the CreateTopics API, as some
// managed services do not: creating them would fail with an error kafka-go
// reports as a broker not being available, which looks like an outage
// worth waiting out.
func checkCreateTopics(ctx context.Context, client *kafka.Client, missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	versions, err := client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		return fmt.Errorf("stream: reading the brokers' API versions: %w", err)
	}
	for _, k := range versions.ApiKeys {
		if k.ApiKey == int(protocol.CreateTopics) {
			return nil
		}
	}
	return fmt.Errorf("stream: the brokers do not offer the CreateTopics API: create the topics %s by hand, with as many partitions as the input topic (a changelog topic with cleanup.policy=compact), and run with --create-topics=false",
		strings.Join(missing, ", "))
}

// setGeneration records the partitions of a new generation, or none (nil)
// when the processor stops.
func (p *Processor) setGeneration(parts []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inGen = parts != nil
	clear(p.assigned)
	for _, part := range parts {
		p.assigned[part] = true
	}
	p.m.assigned.Set(float64(len(parts)))
	p.updateReady()
}

func (p *Processor) setOwned(part int32, owned bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if owned {
		p.owned[part] = true
	} else {
		delete(p.owned, part)
	}
	p.updateReady()
}

// setDiskFull records whether partition part's commit waits for free
// disk space; the processor is not ready while any does.
func (p *Processor) setDiskFull(part int32, full bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if full {
		p.diskFull[part] = true
	} else {
		delete(p.diskFull, part)
	}
	p.m.diskFull.Set(float64(len(p.diskFull)))
	p.updateReady()
}

func (p *Processor) setFatal(err error) {
	p.mu.Lock()
	p.lastFatal = err
	p.updateReady()
	p.mu.Unlock()
}

// updateReady must be called with p.mu held.
func (p *Processor) updateReady() {
	v := 0.0
	if p.readyLocked() {
		v = 1
	}
	p.m.ready.Set(v)
}

func (p *Processor) readyLocked() bool {
	if !p.inGen || p.lastFatal != nil || len(p.diskFull) > 0 {
		return false
	}
	for part := range p.assigned {
		if !p.owned[part] {
			return false
		}
	}
	return true
}

// Ready reports whether the processor is in a consumer-group generation
// and every assigned partition has loaded its state.
func (p *Processor) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyLocked()
}

// Owns reports whether this instance currently serves partition part.
func (p *Processor) Owns(part int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.owned[part]
}

// Partitions returns the partitions this instance currently serves.
func (p *Processor) Partitions() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int32, 0, len(p.owned))
	for part := range p.owned {
		out = append(out, part)
	}
	return out
}

// lockPartition takes partition part's lock and returns its release.
func (p *Processor) lockPartition(part int32) (unlock func()) {
	mu := p.partitionLock(part)
	mu.Lock()
	return mu.Unlock
}

func (p *Processor) partitionLock(part int32) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	mu := p.locks[part]
	if mu == nil {
		mu = new(sync.Mutex)
		p.locks[part] = mu
	}
	return mu
}

// standbyLoop keeps every input partition this instance is not assigned
// warm: every StandbyInterval it brings the partition's local state up to
// the changelog, so that taking the partition over later only needs the
// records written since. It returns when ctx ends.
func (p *Processor) standbyLoop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.StandbyInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := p.cfg.Connection.Partitions(ctx, p.changelog.topic)
		if err != nil {
			p.cfg.Logger.Debug("standby: reading changelog partitions", "err", err)
			continue
		}
		warm := 0
		for part := range int32(n) {
			if ctx.Err() != nil {
				return
			}
			if p.isAssigned(part) {
				continue
			}
			warm++
			if err := p.standby(ctx, part); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("standby: restoring partition", "partition", part, "err", err)
			}
		}
		p.m.standbyParts.Set(float64(warm))
	}
}

// standby brings partition part's local state up to the changelog unless a
// task holds the partition.
func (p *Processor) standby(ctx context.Context, part int32) error {
	mu := p.partitionLock(part)
	if !mu.TryLock() {
		return nil
	}
	defer mu.Unlock()
	local, err := pipeline.LocalOffset(p.db, part)
	if err != nil {
		return err
	}
	_, err = p.changelog.restore(ctx, p.db, part, local, true)
	return err
}

func (p *Processor) isAssigned(part int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.assigned[part]
}
