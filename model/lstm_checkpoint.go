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

// LSTM checkpoint format, version 2. All integers little-endian.
//
//	magic         8 bytes "tsLSTMck"
//	version       uint32 (2)
//	layers        uint32
//	hidden        uint32
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
//	weights       P float32, laid out as lstmNet.params
//	adam m, v     P float32 each
//	average       P float32, the weights forecasts use (see
//	              LearnerConfig.Average; the weights when averaging is off)
//	crc           uint32  CRC-32C of everything before it
//
// Version 1 had no average; it still loads, the average starting at the
// weights.
const (
	lstmMagic         = "tsLSTMck"
	lstmFormatVersion = 2
	lstmMaxRNGState   = 64
)

var lstmCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrLSTMCheckpoint is returned, wrapped, by LSTM.UnmarshalBinary for
// input that is not an intact LSTM checkpoint (bad magic, truncated,
// checksum mismatch, inconsistent lengths, non-finite values).
var ErrLSTMCheckpoint = errors.New("model: corrupt LSTM checkpoint")

// ErrLSTMMismatch is returned, wrapped in an *LSTMMismatchError, by
// LSTM.UnmarshalBinary for an intact checkpoint that was written by a model
// of another shape or by another format version.
var ErrLSTMMismatch = errors.New("model: LSTM checkpoint does not match the model")

// LSTMMismatchError describes the first difference between a checkpoint
// and the model loading it. It unwraps to ErrLSTMMismatch.
type LSTMMismatchError struct {
	// Field names what differs: "format version", "layers", "hidden",
	// "window", "horizon", "features", "quantile levels" or "parameters".
	Field string
	// Checkpoint and Model are the two values.
	Checkpoint, Model string
}

func (e *LSTMMismatchError) Error() string {
	return fmt.Sprintf("model: LSTM checkpoint %s is %s, model has %s", e.Field, e.Checkpoint, e.Model)
}

// Unwrap returns ErrLSTMMismatch.
func (e *LSTMMismatchError) Unwrap() error { return ErrLSTMMismatch }

// MarshalBinary returns a checkpoint of the model: shapes, weights, Adam
// state, the forecasting average, the random generator and the training
// counters. At 2x64 with eight features, H = 28 and three levels it is
// about 944 KB.
func (m *LSTM) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, m.checkpointSize()))
}

// checkpointSize returns the length of the model's checkpoint.
func (m *LSTM) checkpointSize() int {
	return len(lstmMagic) + 4 + 6*4 + 8*m.sh.levels + 5*8 + 4 + 20 + 4*4*len(m.net.params) + 4
}

// AppendBinary appends a checkpoint of the model to b (see MarshalBinary).
func (m *LSTM) AppendBinary(b []byte) ([]byte, error) {
	rng, err := m.rng.MarshalBinary()
	if err != nil {
		return b, fmt.Errorf("model: LSTM checkpoint: %w", err)
	}
	start := len(b)
	le := binary.LittleEndian
	b = append(b, lstmMagic...)
	b = le.AppendUint32(b, lstmFormatVersion)
	sh := m.sh
	for _, v := range [...]int{sh.layers, sh.hidden, sh.window, sh.horizon, sh.features, sh.levels} {
		b = le.AppendUint32(b, uint32(v))
	}
	for _, q := range m.levels {
		b = le.AppendUint64(b, math.Float64bits(q))
	}
	b = le.AppendUint64(b, uint64(len(m.net.params)))
	for _, v := range [...]int64{m.net.step, m.examples, m.steps, m.skipped} {
		b = le.AppendUint64(b, uint64(v))
	}
	b = le.AppendUint32(b, uint32(len(rng)))
	b = append(b, rng...)
	avg := m.net.params
	if m.avg != nil {
		avg = m.avg.params
	}
	for _, s := range [...][]float32{m.net.params, m.net.m, m.net.v, avg} {
		for _, v := range s {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	}
	return le.AppendUint32(b, crc32.Checksum(b[start:], lstmCRC)), nil
}

// lstmReader reads a checkpoint, remembering the first error.
type lstmReader struct {
	b   []byte
	off int
	err error
}

func (r *lstmReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: truncated at byte %d", ErrLSTMCheckpoint, r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *lstmReader) u32() uint32 {
	if s := r.next(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *lstmReader) u64() uint64 {
	if s := r.next(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// floats decodes len(dst) float32 values, failing on non-finite ones.
func (r *lstmReader) floats(dst []float32, what string) {
	s := r.next(4 * len(dst))
	if s == nil {
		return
	}
	for i := range dst {
		v := math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			r.err = fmt.Errorf("%w: %s %d is %v", ErrLSTMCheckpoint, what, i, v)
			return
		}
		dst[i] = v
	}
}

// UnmarshalBinary restores a checkpoint written by MarshalBinary into m,
// whose configuration must give the same shapes. It returns an error
// wrapping ErrLSTMCheckpoint for corrupt or truncated data and an
// *LSTMMismatchError (wrapping ErrLSTMMismatch) for a checkpoint of
// another format version, architecture, horizon, feature count or
// quantile levels; m is unchanged on error. Hyperparameters (learning
// rate, minibatch size, …) and the Calendar are the model's own, not the
// checkpoint's. Training after a round trip continues bit-identically.
func (m *LSTM) UnmarshalBinary(data []byte) error {
	r := &lstmReader{b: data}
	if magic := r.next(len(lstmMagic)); r.err != nil || string(magic) != lstmMagic {
		return fmt.Errorf("%w: bad magic", ErrLSTMCheckpoint)
	}
	version := r.u32()
	if r.err != nil {
		return r.err
	} else if version != 1 && version != lstmFormatVersion {
		return lstmMismatch("format version", uint64(version), lstmFormatVersion)
	}
	if len(data) < r.off+4 {
		return fmt.Errorf("%w: truncated at byte %d", ErrLSTMCheckpoint, len(data))
	}
	body := data[:len(data)-4]
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, lstmCRC); want != got {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrLSTMCheckpoint, got, want)
	}
	r.b = body

	sh := m.sh
	for _, f := range [...]struct {
		name string
		want int
	}{
		{"layers", sh.layers}, {"hidden", sh.hidden}, {"window", sh.window},
		{"horizon", sh.horizon}, {"features", sh.features}, {"quantile levels", sh.levels},
	} {
		v := r.u32()
		if r.err != nil {
			return r.err
		}
		if int64(v) != int64(f.want) {
			return lstmMismatch(f.name, uint64(v), f.want)
		}
	}
	for _, q := range m.levels {
		got := math.Float64frombits(r.u64())
		if r.err != nil {
			return r.err
		}
		if got != q {
			return &LSTMMismatchError{Field: "quantile levels", Checkpoint: fmt.Sprint(got), Model: fmt.Sprint(q)}
		}
	}
	p := len(m.net.params)
	if v := r.u64(); r.err != nil {
		return r.err
	} else if v != uint64(p) {
		return lstmMismatch("parameters", v, p)
	}
	var counters [4]int64
	for i := range counters {
		v := r.u64()
		if v > math.MaxInt64 {
			return fmt.Errorf("%w: counter %d is %d", ErrLSTMCheckpoint, i, v)
		}
		counters[i] = int64(v)
	}
	n := r.u32()
	if r.err != nil {
		return r.err
	}
	if n > lstmMaxRNGState {
		return fmt.Errorf("%w: random state of %d bytes", ErrLSTMCheckpoint, n)
	}
	rngState := r.next(int(n))
	if r.err != nil {
		return r.err
	}
	var rng rand.PCG
	if err := rng.UnmarshalBinary(rngState); err != nil {
		return fmt.Errorf("%w: random state: %w", ErrLSTMCheckpoint, err)
	}
	blocks := 4
	if version == 1 {
		blocks = 3
	}
	if rest := len(body) - r.off; rest != blocks*4*p {
		return fmt.Errorf("%w: %d bytes of parameters, want %d", ErrLSTMCheckpoint, rest, blocks*4*p)
	}
	// Decode into the rollback buffer and the gradients (both scratch
	// between steps), then commit.
	tmp := m.net.saved
	params, mom, vel, avg := tmp[:p], tmp[p:2*p], tmp[2*p:3*p], m.net.grads
	r.floats(params, "weight")
	r.floats(mom, "first moment")
	r.floats(vel, "second moment")
	if version == 1 {
		copy(avg, params)
	} else {
		r.floats(avg, "averaged weight")
	}
	if r.err != nil {
		return r.err
	}
	for i, v := range vel {
		if v < 0 {
			return fmt.Errorf("%w: second moment %d is %v", ErrLSTMCheckpoint, i, v)
		}
	}
	copy(m.net.params, params)
	copy(m.net.m, mom)
	copy(m.net.v, vel)
	if m.avg != nil {
		copy(m.avg.params, avg)
		m.avgPacked = false
	}
	m.net.step, m.examples, m.steps, m.skipped = counters[0], counters[1], counters[2], counters[3]
	*m.rng = rng
	m.net.transpose()
	if m.carry != nil { // states of other weights
		m.carry = newLSTMCarries(m.cfg.Refresh, m.sh.stateLen())
	}
	return nil
}

func lstmMismatch(field string, checkpoint uint64, model int) error {
	return &LSTMMismatchError{
		Field:      field,
		Checkpoint: strconv.FormatUint(checkpoint, 10),
		Model:      strconv.Itoa(model),
	}
}
