package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"
)

// Mixable is a learner whose weights can be averaged with those of the
// same learner in other partitions, so that every partition's model
// benefits from the series of all (model averaging, as in federated
// averaging or local SGD). Every global learner implements it.
//
// A round of mixing is: Snapshot, publish the snapshot to the peers, Mix
// the peers' latest snapshots in. The optimizer state (Adam's moments and
// step count) stays local; only weights move.
type Mixable interface {
	// Snapshot writes the learner's name, configuration fingerprint,
	// training counters, weights and forecasting weights into s, reusing
	// its slices. The caller sets Partition and Round.
	Snapshot(s *Snapshot)
	// Mix moves the learner's weights and forecasting weights to the
	// average of its own and the peers', each weighted by the examples
	// it has seen, with gain on the step away from the weights the
	// learner's previous Mix left (1: plain averaging). A peer snapshot of
	// another learner or configuration is an error wrapping
	// ErrSnapshotMismatch, and the learner is unchanged.
	Mix(peers []*Snapshot, gain float64) error
	// MixBase writes into s the weights the learner's previous Mix left,
	// which the gain of its next Mix is relative to, and reports whether
	// there are any: a learner that has not mixed since it was made or
	// loaded has none. SetMixBase restores them, so a partition that
	// restarts mixes as it would have without the restart.
	MixBase(s *Snapshot) bool
	SetMixBase(s *Snapshot) error
}

// Snapshot is one learner's weights as one partition published them for
// its peers to mix in. Its binary encoding (AppendBinary) is the value of
// a record of the models topic.
type Snapshot struct {
	// Learner is the learner's name and Fingerprint a hash of its
	// architecture, shapes and quantile levels: only snapshots with equal
	// both mix.
	Learner     string
	Fingerprint uint64
	// Version is the learner's optimizer steps when the snapshot was
	// taken; Examples the examples it had trained on, the snapshot's
	// weight in Mix.
	Version, Examples int64
	// Partition is the publishing partition and Round the mixing round of
	// the snapshot (see pipeline.MixConfig).
	Partition int32
	Round     int64
	// Weights are the trained weights and Average the forecasting weights
	// (nil when the learner does not average).
	Weights, Average []float32
}

// Snapshot encoding. All integers little-endian.
//
//	magic         8 bytes "tsMIXsn1"
//	version       uint32, 1
//	learner       uint8 length, then the name
//	fingerprint   uint64
//	version       int64  (optimizer steps)
//	examples      int64
//	partition     int32
//	round         int64
//	params        uint64 P
//	average       uint8, 1 when the Average block follows the weights
//	weights       P float32
//	average       P float32, when present
//	crc           uint32  CRC-32C of everything before it
const (
	snapMagic   = "tsMIXsn1"
	snapVersion = 1
	snapMaxName = 255
	snapMaxLen  = 1 << 28 // parameters
)

// ErrSnapshot is returned, wrapped, by UnmarshalBinary for bytes that are
// not an intact snapshot (bad magic, truncated, checksum mismatch,
// inconsistent lengths, non-finite values).
var ErrSnapshot = errors.New("model: corrupt snapshot")

// ErrSnapshotMismatch is returned, wrapped, by Mix and SetMixBase for an
// intact snapshot of another learner or configuration.
var ErrSnapshotMismatch = errors.New("model: snapshot does not match the learner")

// EncodedLen returns the length of s's encoding.
func (s *Snapshot) EncodedLen() int {
	return len(snapMagic) + 4 + 1 + len(s.Learner) + 8 + 8 + 8 + 4 + 8 + 8 + 1 + 4*(len(s.Weights)+len(s.Average)) + 4
}

// AppendBinary appends the encoding of s to b. It returns an error for a
// name longer than 255 bytes or an Average of another length than
// Weights.
func (s *Snapshot) AppendBinary(b []byte) ([]byte, error) {
	if len(s.Learner) > snapMaxName {
		return b, fmt.Errorf("model: snapshot learner name of %d bytes", len(s.Learner))
	}
	if s.Average != nil && len(s.Average) != len(s.Weights) {
		return b, fmt.Errorf("model: snapshot with %d weights and %d averaged weights", len(s.Weights), len(s.Average))
	}
	start := len(b)
	b = append(b, snapMagic...)
	le := binary.LittleEndian
	b = le.AppendUint32(b, snapVersion)
	b = append(b, byte(len(s.Learner)))
	b = append(b, s.Learner...)
	b = le.AppendUint64(b, s.Fingerprint)
	b = le.AppendUint64(b, uint64(s.Version))
	b = le.AppendUint64(b, uint64(s.Examples))
	b = le.AppendUint32(b, uint32(s.Partition))
	b = le.AppendUint64(b, uint64(s.Round))
	b = le.AppendUint64(b, uint64(len(s.Weights)))
	if s.Average != nil {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, w := range [...][]float32{s.Weights, s.Average} {
		for _, v := range w {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	}
	return le.AppendUint32(b, crc32.Checksum(b[start:], ckCRC)), nil
}

// MarshalBinary returns the encoding of s (see AppendBinary).
func (s *Snapshot) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, s.EncodedLen()))
}

// UnmarshalBinary decodes data into s, reusing its slices. It returns an
// error wrapping ErrSnapshot for anything but an intact snapshot; s is
// unchanged then.
func (s *Snapshot) UnmarshalBinary(data []byte) error {
	r := &ckReader{b: data, name: "snapshot"}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
	}
	if magic := r.next(len(snapMagic)); r.err != nil || string(magic) != snapMagic {
		return corrupt("bad magic")
	}
	if v := r.u32(); r.err != nil || v != snapVersion {
		return corrupt("format version %d, want %d", v, snapVersion)
	}
	if len(data) < r.off+4 {
		return corrupt("truncated at byte %d", len(data))
	}
	body := data[:len(data)-4]
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, ckCRC); want != got {
		return corrupt("checksum %08x, want %08x", got, want)
	}
	r.b = body
	var n int
	if l := r.next(1); l != nil {
		n = int(l[0])
	}
	name := r.next(n)
	fp := r.u64()
	version, examples := int64(r.u64()), int64(r.u64())
	part := int32(r.u32())
	round := int64(r.u64())
	p := r.u64()
	var avg byte
	if a := r.next(1); a != nil {
		avg = a[0]
	}
	if r.err != nil {
		return corrupt("%v", r.err)
	}
	blocks := uint64(1)
	switch {
	case avg > 1:
		return corrupt("average flag %d", avg)
	case avg == 1:
		blocks = 2
	}
	if p > snapMaxLen || uint64(len(body)-r.off) != blocks*4*p {
		return corrupt("%d bytes of parameters for %d parameters", len(body)-r.off, p)
	}
	w := make([]float32, p) // decoded aside so that s is unchanged on error
	r.floats(w, "weight")
	var a []float32
	if avg == 1 {
		a = make([]float32, p)
		r.floats(a, "averaged weight")
	}
	if r.err != nil {
		return corrupt("%v", r.err)
	}
	s.Learner, s.Fingerprint, s.Version, s.Examples, s.Partition, s.Round = string(name), fp, version, examples, part, round
	s.Weights = append(s.Weights[:0], w...)
	if a != nil {
		s.Average = append(s.Average[:0], a...)
	} else {
		s.Average = nil
	}
	return nil
}

// fingerprint hashes what must agree for two learners' weights to mix:
// the learner, its checkpoint format, shapes and quantile levels.
func (g *global[N, B]) fingerprint() uint64 {
	if g.fp != 0 {
		return g.fp
	}
	h := fnv.New64a()
	var b []byte
	b = append(b, g.spec.magic...)
	b = binary.LittleEndian.AppendUint32(b, g.spec.version)
	for _, f := range g.ckFields() {
		b = binary.LittleEndian.AppendUint64(b, uint64(f.v))
	}
	for _, q := range g.levels {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(q))
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(g.net.opt().params)))
	h.Write(b)
	g.fp = h.Sum64() | 1
	return g.fp
}

// Snapshot implements Mixable.
func (g *global[N, B]) Snapshot(s *Snapshot) {
	s.Learner, s.Fingerprint = g.spec.name, g.fingerprint()
	s.Version, s.Examples = g.steps, g.examples
	s.Weights = append(s.Weights[:0], g.net.opt().params...)
	var none N
	if g.avg != none {
		s.Average = append(s.Average[:0], g.avg.opt().params...)
	} else {
		s.Average = nil
	}
}

// check returns an error wrapping ErrSnapshotMismatch when s cannot mix
// into g.
func (g *global[N, B]) check(s *Snapshot) error {
	var none N
	switch {
	case s.Learner != g.spec.name:
		return fmt.Errorf("%w: partition %d's snapshot is of learner %q, not %q", ErrSnapshotMismatch, s.Partition, s.Learner, g.spec.name)
	case s.Fingerprint != g.fingerprint():
		return fmt.Errorf("%w: partition %d's %s has another configuration (fingerprint %016x, want %016x)",
			ErrSnapshotMismatch, s.Partition, s.Learner, s.Fingerprint, g.fingerprint())
	case len(s.Weights) != len(g.net.opt().params):
		return fmt.Errorf("%w: partition %d's snapshot has %d weights, want %d", ErrSnapshotMismatch, s.Partition, len(s.Weights), len(g.net.opt().params))
	case (g.avg != none) != (s.Average != nil):
		return fmt.Errorf("%w: partition %d's snapshot averages weights: %v, the learner: %v", ErrSnapshotMismatch, s.Partition, s.Average != nil, g.avg != none)
	}
	return nil
}

// Mix implements Mixable. With weights w_i proportional to the examples
// each learner has seen (equal when none has seen any), the mixed weights
// are θ̄ = Σ w_i θ_i over the learner and its peers; with a base b from
// the previous Mix they become b + gain·(θ̄ − b), and without one, θ̄.
// The forecasting weights mix the same way with their own base. Carried
// forecast states are kept: like the states carried across training
// steps, they follow the new weights at their series' next full run. Mix
// allocates only the bases, at its first call.
func (g *global[N, B]) Mix(peers []*Snapshot, gain float64) error {
	for _, s := range peers {
		if err := g.check(s); err != nil {
			return err
		}
	}
	if !(gain > 0) || math.IsInf(gain, 0) {
		return fmt.Errorf("model: mixing gain %v is not a positive finite number", gain)
	}
	total := float64(max(g.examples, 0))
	for _, s := range peers {
		total += float64(max(s.Examples, 0))
	}
	weight := func(examples int64) float32 {
		if total == 0 {
			return float32(1 / float64(len(peers)+1))
		}
		return float32(float64(max(examples, 0)) / total)
	}
	own := weight(g.examples)
	mixInto(g.net.opt().params, &g.mixBase, own, peers, weight, gain, false)
	var none N
	if g.avg != none {
		mixInto(g.avg.opt().params, &g.mixBaseAvg, own, peers, weight, gain, true)
	}
	g.net.pack()
	g.avgPacked = false
	return nil
}

// mixInto mixes the peers' weights (their Average with avg) into p, whose
// own weight is own, applies the gain relative to *base when there is one,
// and leaves the result in *base.
func mixInto(p []float32, base *[]float32, own float32, peers []*Snapshot, weight func(int64) float32, gain float64, avg bool) {
	for i := range p {
		p[i] *= own
	}
	for _, s := range peers {
		w, src := weight(s.Examples), s.Weights
		if avg {
			src = s.Average
		}
		for i, v := range src[:len(p)] {
			p[i] += w * v
		}
	}
	if b := *base; b != nil && gain != 1 {
		k := float32(gain)
		for i, bv := range b[:len(p)] {
			p[i] = bv + k*(p[i]-bv)
		}
	}
	*base = append((*base)[:0], p...)
}

// MixBase implements Mixable.
func (g *global[N, B]) MixBase(s *Snapshot) bool {
	if g.mixBase == nil {
		return false
	}
	g.Snapshot(s)
	s.Weights = append(s.Weights[:0], g.mixBase...)
	if g.mixBaseAvg != nil {
		s.Average = append(s.Average[:0], g.mixBaseAvg...)
	}
	return true
}

// SetMixBase implements Mixable.
func (g *global[N, B]) SetMixBase(s *Snapshot) error {
	if err := g.check(s); err != nil {
		return err
	}
	g.mixBase = append(g.mixBase[:0], s.Weights...)
	if s.Average != nil {
		g.mixBaseAvg = append(g.mixBaseAvg[:0], s.Average...)
	}
	return nil
}

var (
	_ Mixable = (*LSTM)(nil)
	_ Mixable = (*GRU)(nil)
	_ Mixable = (*Transformer)(nil)
)
