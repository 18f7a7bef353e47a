package decision

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Encoding versions of the states. A state of another version does not
// decode: the caller starts the series (or partition) afresh.
const (
	trendVersion      = 1
	replenishVersion  = 1
	calibrateVersion  = 1
	maxEncodedHorizon = 10000
)

// ErrState is returned, wrapped, for a state encoding that cannot be
// decoded; the message names what is wrong.
var ErrState = errors.New("decision: bad state encoding")

func stateError(what string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrState, fmt.Sprintf(what, args...))
}

// decoder reads a state encoding, remembering the first error.
type decoder struct {
	b    []byte
	what string // the state decoded, for errors
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = stateError(d.what+": "+format, args...)
	}
}

func (d *decoder) version(want byte) {
	switch {
	case len(d.b) == 0:
		d.fail("empty")
	case d.b[0] != want:
		d.fail("version %d, want %d", d.b[0], want)
	default:
		d.b = d.b[1:]
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated %s", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated %s", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float64(field string) float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated %s", field)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail("%s is %v", field, v)
	}
	return v
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

func appendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// AppendBinary appends the state's encoding to b. It never fails.
func (st *TrendState) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, trendVersion)
	b = binary.AppendUvarint(b, uint64(st.n))
	return appendFloat64(b, st.dispersion), nil
}

// UnmarshalBinary decodes a state encoded by AppendBinary.
func (st *TrendState) UnmarshalBinary(b []byte) error {
	d := decoder{b: b, what: "trend state"}
	d.version(trendVersion)
	n := d.uvarint("count")
	disp := d.float64("dispersion")
	if n > math.MaxUint32 || disp < 0 {
		d.fail("count %d, dispersion %v", n, disp)
	}
	if err := d.end(); err != nil {
		return err
	}
	*st = TrendState{dispersion: disp, n: uint32(n)}
	return nil
}

// AppendBinary appends the state's encoding to b. It never fails.
func (st *ReplenishState) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, replenishVersion)
	b = binary.AppendUvarint(b, uint64(st.lead))
	b = binary.AppendUvarint(b, uint64(st.cycle))
	for i, at := range st.at {
		b = binary.AppendVarint(b, at)
		for role := range roles {
			b = appendFloat64(b, st.total[i*roles+role])
			b = appendFloat64(b, st.scale[i*roles+role])
		}
	}
	for role := range roles {
		b = appendFloat64(b, st.mse[role])
		b = binary.AppendUvarint(b, uint64(st.n[role]))
	}
	return b, nil
}

// UnmarshalBinary decodes a state encoded by AppendBinary. A state made
// for another policy decodes; the next Update resets it.
func (st *ReplenishState) UnmarshalBinary(b []byte) error {
	d := decoder{b: b, what: "replenishment state"}
	d.version(replenishVersion)
	lead, cycle := d.uvarint("lead time"), d.uvarint("cycle")
	if d.err == nil && (cycle > maxEncodedHorizon || lead > cycle) {
		d.fail("lead time %d, cycle %d", lead, cycle)
	}
	if d.err != nil {
		return d.err
	}
	var s ReplenishState
	if cycle > 0 {
		s.reset(int(lead), int(cycle))
	}
	for i := range s.at {
		s.at[i] = d.varint("close")
		for role := range roles {
			s.total[i*roles+role] = d.float64("total")
			s.scale[i*roles+role] = d.float64("scale")
		}
	}
	for role := range roles {
		s.mse[role] = d.float64("squared error")
		n := d.uvarint("count")
		if n > math.MaxUint32 || s.mse[role] < 0 {
			d.fail("count %d, squared error %v", n, s.mse[role])
		}
		s.n[role] = uint32(n)
	}
	if err := d.end(); err != nil {
		return err
	}
	*st = s
	return nil
}

// AppendBinary appends the encoding of the partition's calibration (the
// pooled errors, including those of the current close not yet folded in)
// to b: only bins with weight are written. It never fails.
func (r *Replenisher) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, calibrateVersion)
	b = binary.AppendVarint(b, r.bucket)
	for i := range r.pools {
		for j := range r.pools[i] {
			h := &r.pools[i][j]
			for _, bins := range [2]*[histBins]float64{&h.w, &h.pending} {
				var n uint64
				for _, w := range bins {
					if w > 0 {
						n++
					}
				}
				b = binary.AppendUvarint(b, n)
				for k, w := range bins {
					if w > 0 {
						b = binary.AppendUvarint(b, uint64(k))
						b = appendFloat64(b, w)
					}
				}
			}
		}
	}
	return b, nil
}

// UnmarshalBinary restores a calibration encoded by AppendBinary.
func (r *Replenisher) UnmarshalBinary(b []byte) error {
	d := decoder{b: b, what: "calibration"}
	d.version(calibrateVersion)
	bucket := d.varint("close")
	var pools [roles][strata + 1]histogram
	for i := range pools {
		for j := range pools[i] {
			h := &pools[i][j]
			for _, bins := range [2]*[histBins]float64{&h.w, &h.pending} {
				n := d.uvarint("bin count")
				if n > histBins {
					d.fail("%d bins", n)
				}
				prev := -1
				for range n {
					k := d.uvarint("bin")
					w := d.float64("weight")
					if w <= 0 {
						d.fail("weight %v", w)
					}
					if d.err == nil && (k >= histBins || int(k) <= prev) {
						d.fail("bin %d after %d", k, prev)
					}
					if d.err != nil {
						return d.err
					}
					bins[k], prev = w, int(k)
				}
			}
			for _, w := range h.w {
				h.total += w
			}
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	r.bucket, r.pools = bucket, pools
	return nil
}
