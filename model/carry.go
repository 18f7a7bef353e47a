package model

import "math"

// carrySlot describes the carried state of one series.
type carrySlot struct {
	key  uint64 // the series' Input.Key
	last int64  // bucket index of the last step the state has taken
	// age counts toward the next full run, at refresh-1: the steps since
	// the last full run, or for a new series a start spread by its key.
	age int
	// norm is the window's at the last full run, which the steps since
	// reuse.
	norm featNorm
}

// carries holds the carried states of the series of a recurrent
// learner, keyed by Input.Key: per series the state of its layers after
// its last forecast, so that the next bucket's forecast takes one step
// instead of running the whole window. States live in one slab. When
// room is needed, the states more than refresh buckets behind the newest
// are dropped: their series stopped being forecast (callers forecast
// every series of a close together), and a series that comes back runs
// its window in full. forget drops a state at once.
type carries struct {
	refresh int // steps between full runs
	size    int // floats per state
	index   map[uint64]int32
	slots   []carrySlot
	mem     []float32
	free    []int32
	newest  int64 // newest bucket index a state has reached
}

func newCarries(refresh, size int) *carries {
	return &carries{refresh: refresh, size: size, index: map[uint64]int32{}, newest: math.MinInt64}
}

// state returns the floats of slot i.
func (c *carries) state(i int32) []float32 {
	return c.mem[int(i)*c.size : int(i+1)*c.size : int(i+1)*c.size]
}

// stepping returns the slot of the series with key whose window ends at
// bucket last when its forecast can step its carried state, or -1 when
// it must run its window in full: no state, a bucket skipped or repeated,
// or the age reached refresh-1.
func (c *carries) stepping(key uint64, last int64) int32 {
	if key == 0 {
		return -1
	}
	i, ok := c.index[key]
	if !ok {
		return -1
	}
	s := &c.slots[i]
	if s.last+1 != last || s.age+1 >= c.refresh {
		return -1
	}
	return i
}

// slot returns the slot of key, taking a new one when there is none.
func (c *carries) slot(key uint64) (i int32, fresh bool) {
	if i, ok := c.index[key]; ok {
		return i, false
	}
	if len(c.free) == 0 && len(c.slots) == cap(c.slots) {
		c.prune()
	}
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		i = int32(len(c.slots))
		c.slots = append(c.slots, carrySlot{})
		c.mem = append(c.mem, make([]float32, c.size)...)
	}
	c.slots[i] = carrySlot{key: key}
	c.index[key] = i
	return i, true
}

// prune frees the slots more than refresh buckets behind the newest.
func (c *carries) prune() {
	for i := range c.slots {
		if s := &c.slots[i]; s.key != 0 && s.last < c.newest-int64(c.refresh) {
			c.drop(int32(i))
		}
	}
}

// forget drops the state of key, if any.
func (c *carries) forget(key uint64) {
	if i, ok := c.index[key]; ok {
		c.drop(i)
	}
}

// drop frees slot i.
func (c *carries) drop(i int32) {
	delete(c.index, c.slots[i].key)
	c.slots[i] = carrySlot{}
	c.free = append(c.free, i)
}

// stepped records that slot i stepped to bucket last.
func (c *carries) stepped(i int32, last int64) {
	s := &c.slots[i]
	s.last = last
	s.age++
	c.newest = max(c.newest, last)
}

// ranFull records a full run of the window ending at bucket last, with
// its norm, into slot i; fresh marks a new slot, which starts at an age
// spread by its key, so that series that appear together do not all run
// in full at the same closes.
func (c *carries) ranFull(i int32, last int64, norm featNorm, fresh bool) {
	s := &c.slots[i]
	s.last, s.norm = last, norm
	s.age = 0
	if fresh {
		s.age = int(s.key % uint64(c.refresh))
	}
	c.newest = max(c.newest, last)
}

// len returns the number of series with a state.
func (c *carries) len() int { return len(c.index) }
