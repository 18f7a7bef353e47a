package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/trendstream/trendstream/model"
)

// Mixer exchanges learner snapshots between the partitions of a
// consumer group, so that each partition's learners mix in the weights of
// the others' (see model.Mixable). At a mixing round a partition first
// publishes its snapshot, then asks for its peers'. The Kafka driver
// implements it with a compacted topic, backtests with partitions in lock
// step.
type Mixer interface {
	// Publish makes a partition's snapshot (own.Partition, own.Round,
	// own.Learner) available to the other partitions. own is valid only
	// during the call.
	Publish(own *model.Snapshot) error
	// Peers returns the snapshots of learner that partition self mixes in
	// at round: for each other partition its latest of a round up to
	// round, if any. They stay valid, unchanged, until self's next
	// Publish.
	Peers(self int32, learner string, round int64) ([]*model.Snapshot, error)
}

// MixConfig configures the mixing of learners across partitions.
// DefaultMixConfig is the one source of its defaults.
type MixConfig struct {
	// Every is the number of buckets per mixing round: a partition mixes
	// at the first close of a bucket whose index divided by Every is
	// greater than that of its last mixing, so every partition mixes at
	// the same buckets of event time whatever its pace. 0 turns mixing
	// off.
	Every int
	// Gain is model.Mixable's gain on the step from the weights of the
	// previous round: above 1 it extrapolates the peers' common step, as
	// the server learning rate of federated averaging does. 0 means 1:
	// plain averaging.
	Gain float64
}

// DefaultMixConfig returns the default: mixing at every bucket with gain
// 1.5, which steps a little beyond the average of the partitions' steps
// since the last round (the README's backtests compare cadences and
// gains).
func DefaultMixConfig() MixConfig { return MixConfig{Every: 1, Gain: 1.5} }

// Validate returns an error naming the first invalid field.
func (c MixConfig) Validate() error {
	switch {
	case c.Every < 0:
		return fmt.Errorf("pipeline: MixConfig.Every %d is negative", c.Every)
	case !(c.Gain >= 0) || math.IsInf(c.Gain, 0):
		return fmt.Errorf("pipeline: MixConfig.Gain %v is not a finite number of at least 0", c.Gain)
	}
	return nil
}

// MixStats count what mixing cost a partition.
type MixStats struct {
	// Rounds counts mixing rounds, Published the bytes of the snapshots
	// the partition published and Received those of the peer snapshots
	// it mixed in (as encoded).
	Rounds              int
	Published, Received int64
	// Seconds is the time spent snapshotting, publishing and mixing, and
	// WaitSeconds the time spent getting the peers' snapshots (in a
	// backtest, waiting for the slowest partition to reach the round).
	Seconds, WaitSeconds float64
}

// PeerVersion identifies a peer snapshot a partition mixed in.
type PeerVersion struct {
	Partition int32
	Round     int64
	Version   int64
}

// SetMixer makes the engine, as partition p, mix its learners with those
// of the other partitions through mx every cfg.Every buckets. It must be
// called before the first record and before Load; a nil mx or an Every of
// 0 leaves mixing off.
func (e *Engine) SetMixer(mx Mixer, p int32, cfg MixConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if mx == nil || cfg.Every == 0 {
		e.roster.mix = nil
		return nil
	}
	e.roster.mix = &mixing{mx: mx, p: p, cfg: cfg, last: make([]int64, len(e.roster.learners)),
		mixed: make([][]PeerVersion, len(e.roster.learners)), dirty: make([]bool, len(e.roster.learners))}
	for i := range e.roster.mix.last {
		e.roster.mix.last[i] = math.MinInt64
	}
	return nil
}

// Mixing returns what mixing has cost the partition so far.
func (e *Engine) Mixing() MixStats {
	if e.roster.mix == nil {
		return MixStats{}
	}
	return e.roster.mix.stats
}

// MixedPeers returns the peer snapshots the learner of row learner (an
// index in Models) mixed in at its latest round, and that round; false
// when it has not mixed.
func (e *Engine) MixedPeers(row int) ([]PeerVersion, int64, bool) {
	mx, k := e.roster.mix, row-len(e.roster.series)
	if mx == nil || k < 0 || k >= len(mx.last) || mx.last[k] == math.MinInt64 {
		return nil, 0, false
	}
	return mx.mixed[k], mx.last[k], true
}

// mixing is a roster's state of mixing, per learner.
type mixing struct {
	mx    Mixer
	p     int32
	cfg   MixConfig
	last  []int64         // round of the latest mixing, MinInt64 before the first
	mixed [][]PeerVersion // the peer snapshots of that round
	dirty []bool          // mixed since the last commit
	own   model.Snapshot
	base  model.Snapshot
	stats MixStats
	buf   []byte
}

// mixRound mixes the roster's learners with their peers when the close of
// bucket starts a new round.
func (m *roster) mixRound(bucket int64) error {
	mx := m.mix
	round := floorDiv(bucket, int64(mx.cfg.Every))
	for k, l := range m.learners {
		ml, ok := l.(model.Mixable)
		if !ok || round <= mx.last[k] {
			continue
		}
		started := time.Now()
		name := m.names[len(m.series)+k]
		ml.Snapshot(&mx.own)
		mx.own.Partition, mx.own.Round = mx.p, round
		if err := mx.mx.Publish(&mx.own); err != nil {
			return fmt.Errorf("pipeline: publishing partition %d's %s snapshot of round %d: %w", mx.p, name, round, err)
		}
		waited := time.Now()
		peers, err := mx.mx.Peers(mx.p, name, round)
		wait := time.Since(waited)
		mx.stats.WaitSeconds += wait.Seconds()
		if err != nil {
			return fmt.Errorf("pipeline: partition %d's %s peers of round %d: %w", mx.p, name, round, err)
		}
		if len(peers) == 0 { // nothing to mix: a lone partition keeps its weights
			mx.last[k] = round
			continue
		}
		gain := mx.cfg.Gain
		if gain == 0 {
			gain = 1
		}
		if err := ml.Mix(peers, gain); err != nil {
			return fmt.Errorf("pipeline: partition %d mixing %s at round %d: %w", mx.p, name, round, err)
		}
		mx.mixed[k] = mx.mixed[k][:0]
		for _, s := range peers {
			mx.mixed[k] = append(mx.mixed[k], PeerVersion{Partition: s.Partition, Round: s.Round, Version: s.Version})
			mx.stats.Received += int64(s.EncodedLen())
		}
		mx.last[k], mx.dirty[k] = round, true
		mx.stats.Rounds++
		mx.stats.Published += int64(mx.own.EncodedLen())
		mx.stats.Seconds += (time.Since(started) - wait).Seconds()
		m.trained = true // the mixed weights are checkpointed with the round
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// mixKey is the key of the mixing record of a learner in partition p,
// beside its checkpoint.
func mixKey(dst []byte, p int32, name string) []byte {
	return key(dst, p, kindModel, append([]byte(name), "/mix"...))
}

// mixRecordVersion is the encoding version of a mixing record:
//
//	version   1 byte
//	round     varint, the latest round mixed
//	peers     uvarint n, then n × (partition varint, round varint, version varint)
//	base      the rest: the learner's mix base (model.Snapshot encoding), or nothing
const mixRecordVersion = 1

// ErrMixRecord is returned, wrapped, for a stored mixing record that does
// not decode.
var ErrMixRecord = errors.New("pipeline: corrupt mixing record")

// appendMix adds to a commit the mixing record of every learner that mixed
// since the last commit, with its checkpoint.
func (m *roster) appendMix(b Writes, p int32) error {
	mx := m.mix
	if mx == nil {
		return nil
	}
	var k []byte
	for i, l := range m.learners {
		if !mx.dirty[i] {
			continue
		}
		v := append(mx.buf[:0], mixRecordVersion)
		v = binary.AppendVarint(v, mx.last[i])
		v = binary.AppendUvarint(v, uint64(len(mx.mixed[i])))
		for _, pv := range mx.mixed[i] {
			v = binary.AppendVarint(v, int64(pv.Partition))
			v = binary.AppendVarint(v, pv.Round)
			v = binary.AppendVarint(v, pv.Version)
		}
		if ml, ok := l.(model.Mixable); ok && ml.MixBase(&mx.base) {
			var err error
			if v, err = mx.base.AppendBinary(v); err != nil {
				return fmt.Errorf("pipeline: encoding partition %d's mix base: %w", p, err)
			}
		}
		mx.buf = v
		b.SetFinal(mixKey(k[:0], p, m.names[len(m.series)+i]), v, 0)
		mx.dirty[i] = false
	}
	return nil
}

// loadMix restores the mixing records of partition p: the round each
// learner last mixed, the peers it mixed and the base of its next mix.
func (m *roster) loadMix(db Store, p int32) error {
	mx := m.mix
	if mx == nil {
		return nil
	}
	for i, l := range m.learners {
		name := m.names[len(m.series)+i]
		_, err := db.Get(mixKey(nil, p, name), func(v []byte) error {
			round, peers, base, err := decodeMix(v)
			if err != nil {
				return err
			}
			if base != nil {
				ml, ok := l.(model.Mixable)
				if !ok {
					return fmt.Errorf("%w: %s does not mix", ErrMixRecord, name)
				}
				if err := ml.SetMixBase(base); err != nil {
					return err
				}
			}
			mx.last[i], mx.mixed[i] = round, peers
			return nil
		})
		if err != nil {
			return fmt.Errorf("pipeline: partition %d's %s mixing record: %w", p, name, err)
		}
	}
	return nil
}

// decodeMix decodes a mixing record.
func decodeMix(v []byte) (round int64, peers []PeerVersion, base *model.Snapshot, err error) {
	if len(v) < 1 || v[0] != mixRecordVersion {
		return 0, nil, nil, fmt.Errorf("%w: encoding version %d (this build reads %d)", ErrMixRecord, firstByte(v), mixRecordVersion)
	}
	v = v[1:]
	varint := func() int64 {
		x, n := binary.Varint(v)
		if n <= 0 {
			err = ErrMixRecord
			return 0
		}
		v = v[n:]
		return x
	}
	round = varint()
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return 0, nil, nil, fmt.Errorf("%w: peer count", ErrMixRecord)
	}
	v = v[k:]
	for range n {
		pv := PeerVersion{Partition: int32(varint()), Round: varint(), Version: varint()}
		peers = append(peers, pv)
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: truncated", ErrMixRecord)
	}
	if len(v) > 0 {
		base = &model.Snapshot{}
		if err := base.UnmarshalBinary(v); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: base: %w", ErrMixRecord, err)
		}
	}
	return round, peers, base, nil
}
