package stream

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trendstream/trendstream/pipeline"
)

// metrics are a Processor's Prometheus metrics. Partition tasks update them
// once per batch from their engine's counters, keeping the per-record path
// free of atomic operations.
type metrics struct {
	consumed   prometheus.Counter
	accepted   prometheus.Counter
	duplicates prometheus.Counter
	late       prometheus.Counter
	replayed   prometheus.Counter
	markers    prometheus.Counter
	dlq        *prometheus.CounterVec
	closes     prometheus.Counter
	forecasts  prometheus.Counter
	batches    prometheus.Counter
	evicted    prometheus.Counter
	revived    prometheus.Counter
	forgotten  prometheus.Counter
	retired    prometheus.Counter
	skipped    prometheus.Counter

	watermark *prometheus.GaugeVec
	lag       *prometheus.GaugeVec
	offset    *prometheus.GaugeVec
	series    *prometheus.GaugeVec
	dedupIDs  *prometheus.GaugeVec

	closeSeconds  prometheus.Histogram
	commitSeconds prometheus.Histogram
	writeSeconds  prometheus.Histogram
	loadSeconds   prometheus.Histogram

	trainSeconds prometheus.Histogram
	trainSteps   prometheus.Counter
	trainSkipped prometheus.Counter
	trainLoss    prometheus.Gauge
	onlineAbs    *prometheus.CounterVec
	onlineScored *prometheus.CounterVec

	restoreRecords  prometheus.Counter
	restoreProgress *prometheus.GaugeVec
	restoreSeconds  prometheus.Histogram
	restores        *prometheus.CounterVec
	standbyRecords  prometheus.Counter
	standbyParts    prometheus.Gauge

	assigned      prometheus.Gauge
	ready         prometheus.Gauge
	diskFull      prometheus.Gauge
	outputErrs    prometheus.Counter
	outputRefused *prometheus.CounterVec
	dlqTruncated  prometheus.Counter
	fetchErrs     prometheus.Counter

	plans        prometheus.Counter
	orders       prometheus.Counter
	trends       prometheus.Counter
	trending     *prometheus.CounterVec
	sideApplied  *prometheus.CounterVec
	sideRejected *prometheus.CounterVec

	explanations prometheus.Counter
	explainErrs  *prometheus.CounterVec

	planned prometheus.Counter
	whatifs *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := factory{reg}
	partition := []string{"partition"}
	m := &metrics{
		consumed:   f.counter("records_consumed_total", "Input records consumed, whatever their outcome."),
		accepted:   f.counter("records_accepted_total", "Input records counted in a bucket."),
		duplicates: f.counter("duplicate_records_total", "Input records dropped as copies of an event id already counted."),
		late:       f.counter("late_records_total", "Input records whose bucket had already closed."),
		replayed:   f.counter("replayed_records_total", "Input records skipped on replay because their series state already held them."),
		markers:    f.counter("transaction_markers_total", "Transaction commit and abort markers skipped in the input (written by transactional producers; no events)."),
		dlq:        f.counterVec("dlq_records_total", "Input records sent to the dead-letter topic, by reason.", "reason"),
		closes:     f.counter("bucket_closes_total", "Buckets closed across partitions."),
		forecasts:  f.counter("forecasts_published_total", "Forecast records written to the output topic."),
		batches:    f.counter("batches_committed_total", "Input batches whose state and offset were committed."),
		evicted:    f.counter("series_evicted_total", "Idle series evicted from memory to stay under the series cap; their state stays in the store."),
		revived:    f.counter("series_revived_total", "Evicted series taken back into memory by a new event."),
		retired: f.counter("series_retired_total",
			"Series deleted from memory and the store after --retire-after of event time without a sale."),
		skipped: f.counter("buckets_skipped_total",
			"Buckets closed without forecasts because a partition's watermark passed more than History of them at once (a stray event far ahead, or a first one far behind)."),
		forgotten: f.counter("dedup_forgotten_total",
			"Event ids forgotten before the dedup horizon to keep a partition under its cap (--dedup-max-ids); a copy of one arriving while its bucket is open counts again."),

		watermark: f.gaugeVec("watermark_seconds", "Partition watermark as a Unix time.", partition...),
		lag:       f.gaugeVec("consumer_lag_records", "Records between the last fetched offset and the partition's end.", partition...),
		offset:    f.gaugeVec("committed_offset", "Next input offset committed to the state store.", partition...),
		series:    f.gaugeVec("series", "Series held in memory per partition (see series_evicted_total).", partition...),
		dedupIDs:  f.gaugeVec("dedup_ids", "Event ids remembered for deduplication per partition.", partition...),

		closeSeconds:  f.histogram("bucket_close_seconds", "Time to forecast every series of a partition at a bucket close."),
		commitSeconds: f.histogram("batch_commit_seconds", "Time to commit a batch's state and offset to Badger."),
		writeSeconds:  f.histogram("output_write_seconds", "Time to write a batch's forecasts and dead letters to Kafka."),
		loadSeconds:   f.histogram("partition_load_seconds", "Time to load a partition's state at assignment."),

		trainSeconds: f.histogram("train_seconds", "Time a partition's learners trained at a bucket close."),
		trainSteps:   f.counter("train_steps_total", "Optimizer steps taken by the learners."),
		trainSkipped: f.counter("train_skipped_steps_total", "Optimizer steps skipped for a non-finite loss or gradient."),
		trainLoss:    f.gauge("train_loss", "Mean training loss of the last bucket close that trained, in scaled units."),
		onlineAbs: f.counterVec("online_week_abs_error_total",
			"Absolute error of each model's forecast of a series' next-week total, summed as the weeks close.", "model"),
		onlineScored: f.counterVec("online_week_scored_total", "Next-week totals scored per model.", "model"),

		restoreRecords:  f.counter("restore_records_total", "Changelog records applied while restoring partitions."),
		restoreProgress: f.gaugeVec("restore_progress_ratio", "Share of a partition's changelog restored, while restoring.", partition...),
		restoreSeconds:  f.histogram("restore_seconds", "Time to restore a partition from the changelog."),
		restores: f.counterVec("restores_total",
			"Partition restores from the changelog, at assignment or on standby: full rebuilds or incremental catch-ups.", "mode"),
		standbyRecords: f.counter("standby_records_total", "Changelog records applied to partitions kept warm on standby."),
		standbyParts:   f.gauge("standby_partitions", "Partitions this instance keeps warm on standby."),

		assigned:   f.gauge("assigned_partitions", "Input partitions assigned to this instance."),
		ready:      f.gauge("ready", "1 when every assigned partition has loaded its state."),
		diskFull:   f.gauge("disk_full_partitions", "Partitions whose commit waits for free space in the state directory."),
		outputErrs: f.counter("output_write_errors_total", "Failed attempts to write outputs to Kafka (retried)."),
		outputRefused: f.counterVec("output_refused_total",
			"Output records the brokers refused for themselves (too large, invalid) and that were dropped, a dead letter only once its bounded form was refused too; each is logged with its source.", "output"),
		dlqTruncated: f.counter("dlq_truncated_total",
			"Dead letters sent with their key or value cut to fit the dead-letter topic; their headers hold the original's size and SHA-256."),
		fetchErrs: f.counter("fetch_errors_total", "Failed attempts to fetch input records (retried)."),

		plans:    f.counter("replenishment_plans_total", "Replenishment plan records written to the replenishment topic."),
		orders:   f.counter("replenishment_orders_total", "Replenishment plans with a known stock position suggesting a positive order."),
		trends:   f.counter("trends_records_total", "Trends records (one per store, partition and close) written to the trends topic."),
		trending: f.counterVec("trending_series_total", "Series ranked in trends records, by class.", "class"),
		sideApplied: f.counterVec("side_records_applied_total",
			"Catalog, inventory and plans records applied to the tables the partitions read, by topic.", "topic"),
		sideRejected: f.counterVec("side_records_rejected_total",
			"Catalog, inventory and plans records sent to the dead-letter topic, by topic.", "topic"),

		explanations: f.counter("explanations_total", "Forecast explanations served by GET /v1/series/{store}/{sku}/explain."),
		explainErrs: f.counterVec("explanation_errors_total",
			"Explanation requests answered with an error, by reason: not_found, no_learner, bad_request, canceled, internal.", "reason"),
		planned: f.counter("forecasts_planned_total", "Forecasts published under a promotion plan from the plans topic."),
		whatifs: f.counterVec("whatif_requests_total", "Promotion what-if requests answered, by HTTP status code.", "code"),
	}
	for _, o := range []string{outputForecast, outputDeadLetter} {
		m.outputRefused.WithLabelValues(o)
	}
	for _, r := range pipeline.Reasons {
		m.dlq.WithLabelValues(string(r))
	}
	return m
}

// Values of the output label of output_refused_total.
const (
	outputForecast   = "forecast"
	outputDeadLetter = "dead_letter"
)

// addModels folds the models' statistics into the metrics and resets
// them.
func (m *metrics) addModels(s *pipeline.ModelStats, skipped int) {
	for _, d := range s.LearnSeconds {
		m.trainSeconds.Observe(d)
	}
	m.trainSteps.Add(float64(s.Steps))
	m.trainSkipped.Add(float64(skipped))
	if s.Steps > 0 {
		m.trainLoss.Set(s.Loss / float64(s.Steps))
	}
	for name, v := range s.WeekAbs {
		m.onlineAbs.WithLabelValues(name).Add(v)
		m.onlineScored.WithLabelValues(name).Add(float64(s.WeekN[name]))
	}
	s.Reset()
}

// add folds an engine's counters into the metrics and resets them.
func (m *metrics) add(c *pipeline.Counters) {
	m.consumed.Add(float64(c.Records))
	m.accepted.Add(float64(c.Accepted))
	m.duplicates.Add(float64(c.Dupes))
	m.late.Add(float64(c.Late))
	m.replayed.Add(float64(c.Replayed))
	m.closes.Add(float64(c.Closes))
	m.forecasts.Add(float64(c.Forecasts))
	m.planned.Add(float64(c.Planned))
	m.evicted.Add(float64(c.Evicted))
	m.revived.Add(float64(c.Revived))
	m.forgotten.Add(float64(c.Forgotten))
	m.retired.Add(float64(c.Retired))
	m.skipped.Add(float64(c.Skipped))
	for r, n := range c.DeadLetters {
		m.dlq.WithLabelValues(string(r)).Add(float64(n))
	}
	c.Reset()
}

func (m *metrics) forget(p int32) {
	l := strconv.Itoa(int(p))
	for _, v := range []*prometheus.GaugeVec{m.watermark, m.lag, m.offset, m.series, m.dedupIDs} {
		v.DeleteLabelValues(l)
	}
}

type factory struct{ reg prometheus.Registerer }

func (f factory) register(c prometheus.Collector) {
	if f.reg != nil {
		f.reg.MustRegister(c)
	}
}

func opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "trendstream", Name: name, Help: help}
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	f.register(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	f.register(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts(opts(name, help)))
	f.register(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts(opts(name, help)), labels)
	f.register(g)
	return g
}

func (f factory) histogram(name, help string) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "trendstream", Name: name, Help: help,
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
	})
	f.register(h)
	return h
}
