package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strconv"
)

// Checkpoint format of the global learners. All integers little-endian.
//
//	magic         8 bytes, the learner's ("tsLSTMck" for the LSTM)
//	version       uint32, the learner's format version
//	layers        uint32
//	hidden        uint32
//	heads         uint32, only for learners with attention heads
//	window        uint32  L
//	horizon       uint32  H
//	features      uint32
//	levels        uint32  n, then n float64 quantile levels
//	params        uint64  P, the number of parameters
//	adam step     uint64
//	examples      uint64  training counters: examples, steps taken,
//	steps         uint64  steps skipped
//	skipped       uint64
//	rng           uint32 length, then the PCG state (rand.PCG.MarshalBinary)
//	weights       P float32, laid out as the network's parameters
//	adam m, v     P float32 each
//	average       P float32, the weights forecasts use (see
//	              LearnerConfig.Average; the weights when averaging is off)
//	crc           uint32  CRC-32C of everything before it
//
// A learner may still load an older version without the average block
// (the LSTM's version 1), the average starting at the weights.
const ckMaxRNGState = 64

var ckCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrCheckpoint is returned, wrapped, by a learner's UnmarshalBinary for
// input that is not an intact checkpoint of that learner (bad magic,
// truncated, checksum mismatch, inconsistent lengths, non-finite values).
var ErrCheckpoint = errors.New("model: corrupt checkpoint")

// ErrCheckpointMismatch is returned, wrapped in a
// *CheckpointMismatchError, by a learner's UnmarshalBinary for an intact
// checkpoint that was written by a model of another shape or by another
// format version.
var ErrCheckpointMismatch = errors.New("model: checkpoint does not match the model")

// CheckpointMismatchError describes the first difference between a
// checkpoint and the learner loading it. It unwraps to
// ErrCheckpointMismatch.
type CheckpointMismatchError struct {
	// Learner is the name of the learner loading the checkpoint.
	Learner string
	// Field names what differs: "format version", "layers", "hidden",
	// "heads", "window", "horizon", "features", "quantile levels" or
	// "parameters".
	Field string
	// Checkpoint and Model are the two values.
	Checkpoint, Model string
}

func (e *CheckpointMismatchError) Error() string {
	return fmt.Sprintf("model: %s checkpoint %s is %s, model has %s", e.Learner, e.Field, e.Checkpoint, e.Model)
}

// Unwrap returns ErrCheckpointMismatch.
func (e *CheckpointMismatchError) Unwrap() error { return ErrCheckpointMismatch }

// The LSTM's names of the checkpoint errors, which callers that test for
// an LSTM's errors use.
var (
	ErrLSTMCheckpoint = ErrCheckpoint
	ErrLSTMMismatch   = ErrCheckpointMismatch
)

// LSTMMismatchError is the CheckpointMismatchError of an LSTM.
type LSTMMismatchError = CheckpointMismatchError

// ckField is a shape field of a checkpoint header.
type ckField struct {
	name string
	v    int
}

// ckFields returns the shape fields of the model's checkpoint header, in
// order.
func (g *global[N, B]) ckFields() []ckField {
	sh := g.sh
	f := []ckField{{"layers", sh.layers}, {"hidden", sh.hidden}, {"heads", sh.heads}, {"window", sh.window},
		{"horizon", sh.horizon}, {"features", sh.features}, {"quantile levels", sh.levels}}
	if !g.spec.heads {
		f = append(f[:2], f[3:]...)
	}
	return f
}

// MarshalBinary returns a checkpoint of the model: shapes, weights, Adam
// state, the forecasting average, the random generator and the training
// counters: 16 bytes per parameter plus a header.
func (g *global[N, B]) MarshalBinary() ([]byte, error) {
	return g.AppendBinary(make([]byte, 0, g.checkpointSize()))
}

// checkpointSize returns the length of the model's checkpoint.
func (g *global[N, B]) checkpointSize() int {
	return len(g.spec.magic) + 4 + 4*len(g.ckFields()) + 8*g.sh.levels + 5*8 + 4 + 20 + 4*4*len(g.net.opt().params) + 4
}

// AppendBinary appends a checkpoint of the model to b (see MarshalBinary).
func (g *global[N, B]) AppendBinary(b []byte) ([]byte, error) {
	rng, err := g.rng.MarshalBinary()
	if err != nil {
		return b, fmt.Errorf("model: %s checkpoint: %w", g.spec.name, err)
	}
	start := len(b)
	le := binary.LittleEndian
	b = append(b, g.spec.magic...)
	b = le.AppendUint32(b, g.spec.version)
	for _, f := range g.ckFields() {
		b = le.AppendUint32(b, uint32(f.v))
	}
	for _, q := range g.levels {
		b = le.AppendUint64(b, math.Float64bits(q))
	}
	net := g.net.opt()
	b = le.AppendUint64(b, uint64(len(net.params)))
	for _, v := range [...]int64{net.step, g.examples, g.steps, g.skipped} {
		b = le.AppendUint64(b, uint64(v))
	}
	b = le.AppendUint32(b, uint32(len(rng)))
	b = append(b, rng...)
	avg := net.params
	var none N
	if g.avg != none {
		avg = g.avg.opt().params
	}
	for _, s := range [...][]float32{net.params, net.m, net.v, avg} {
		for _, v := range s {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	}
	return le.AppendUint32(b, crc32.Checksum(b[start:], ckCRC)), nil
}

// ckReader reads a checkpoint, remembering the first error.
type ckReader struct {
	b    []byte
	off  int
	name string // the learner's
	err  error
}

// corrupt returns an error wrapping ErrCheckpoint.
func (r *ckReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w (%s): %s", ErrCheckpoint, r.name, fmt.Sprintf(format, args...))
}

func (r *ckReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = r.corrupt("truncated at byte %d", r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *ckReader) u32() uint32 {
	if s := r.next(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *ckReader) u64() uint64 {
	if s := r.next(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// floats decodes len(dst) float32 values, failing on non-finite ones.
func (r *ckReader) floats(dst []float32, what string) {
	s := r.next(4 * len(dst))
	if s == nil {
		return
	}
	for i := range dst {
		v := math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			r.err = r.corrupt("%s %d is %v", what, i, v)
			return
		}
		dst[i] = v
	}
}

// UnmarshalBinary restores a checkpoint written by MarshalBinary into the
// model, whose configuration must give the same shapes. It returns an
// error wrapping ErrCheckpoint for corrupt or truncated data and a
// *CheckpointMismatchError (wrapping ErrCheckpointMismatch) for a
// checkpoint of another format version, architecture, horizon, feature
// count or quantile levels; the model is unchanged on error.
// Hyperparameters (learning rate, minibatch size, …) and the Calendar are
// the model's own, not the checkpoint's. Training after a round trip
// continues bit-identically.
func (g *global[N, B]) UnmarshalBinary(data []byte) error {
	spec := g.spec
	r := &ckReader{b: data, name: spec.name}
	if magic := r.next(len(spec.magic)); r.err != nil || string(magic) != spec.magic {
		return r.corrupt("bad magic")
	}
	version := r.u32()
	if r.err != nil {
		return r.err
	} else if version != spec.version && (spec.noAverage == 0 || version != spec.noAverage) {
		return g.mismatch("format version", uint64(version), int(spec.version))
	}
	if len(data) < r.off+4 {
		return r.corrupt("truncated at byte %d", len(data))
	}
	body := data[:len(data)-4]
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, ckCRC); want != got {
		return r.corrupt("checksum %08x, want %08x", got, want)
	}
	r.b = body

	for _, f := range g.ckFields() {
		v := r.u32()
		if r.err != nil {
			return r.err
		}
		if int64(v) != int64(f.v) {
			return g.mismatch(f.name, uint64(v), f.v)
		}
	}
	for _, q := range g.levels {
		got := math.Float64frombits(r.u64())
		if r.err != nil {
			return r.err
		}
		if got != q {
			return &CheckpointMismatchError{Learner: spec.name, Field: "quantile levels", Checkpoint: fmt.Sprint(got), Model: fmt.Sprint(q)}
		}
	}
	net := g.net.opt()
	p := len(net.params)
	if v := r.u64(); r.err != nil {
		return r.err
	} else if v != uint64(p) {
		return g.mismatch("parameters", v, p)
	}
	var counters [4]int64
	for i := range counters {
		v := r.u64()
		if v > math.MaxInt64 {
			return r.corrupt("counter %d is %d", i, v)
		}
		counters[i] = int64(v)
	}
	n := r.u32()
	if r.err != nil {
		return r.err
	}
	if n > ckMaxRNGState {
		return r.corrupt("random state of %d bytes", n)
	}
	rngState := r.next(int(n))
	if r.err != nil {
		return r.err
	}
	var rng rand.PCG
	if err := rng.UnmarshalBinary(rngState); err != nil {
		return fmt.Errorf("%w (%s): random state: %w", ErrCheckpoint, spec.name, err)
	}
	blocks := 4
	if version == spec.noAverage {
		blocks = 3
	}
	if rest := len(body) - r.off; rest != blocks*4*p {
		return r.corrupt("%d bytes of parameters, want %d", rest, blocks*4*p)
	}
	// Decode into the rollback buffer and the gradients (both scratch
	// between steps), then commit.
	tmp := net.saved
	params, mom, vel, avg := tmp[:p], tmp[p:2*p], tmp[2*p:3*p], net.grads
	r.floats(params, "weight")
	r.floats(mom, "first moment")
	r.floats(vel, "second moment")
	if blocks == 3 {
		copy(avg, params)
	} else {
		r.floats(avg, "averaged weight")
	}
	if r.err != nil {
		return r.err
	}
	for i, v := range vel {
		if v < 0 {
			return r.corrupt("second moment %d is %v", i, v)
		}
	}
	copy(net.params, params)
	copy(net.m, mom)
	copy(net.v, vel)
	var none N
	if g.avg != none {
		copy(g.avg.opt().params, avg)
		g.avgPacked = false
	}
	net.step, g.examples, g.steps, g.skipped = counters[0], counters[1], counters[2], counters[3]
	*g.rng = rng
	g.net.pack()
	if g.carry != nil { // states of other weights
		g.carry = newCarries(g.cfg.Refresh, g.carry.size)
	}
	return nil
}

func (g *global[N, B]) mismatch(field string, checkpoint uint64, model int) error {
	return &CheckpointMismatchError{
		Learner:    g.spec.name,
		Field:      field,
		Checkpoint: strconv.FormatUint(checkpoint, 10),
		Model:      strconv.Itoa(model),
	}
}
