package model

// lstmCarrySlot describes the carried state of one series.
type lstmCarrySlot struct {
	key   uint64  // the series' Input.Key
	last  int64   // bucket index of the last step the state has taken
	age   int     // steps taken since the window was last run in full
	scale float64 // scale of that run, which the steps since reuse
}

// lstmCarries holds the carried LSTM state of the series of one model,
// keyed by Input.Key: per series the layers' h and c after its last
// forecast, so that the next bucket's forecast takes one step instead of
// running the whole window. States live in one slab; a state whose series
// has not advanced for refresh buckets is dropped when room is needed,
// since its next forecast would run the window in full anyway.
type lstmCarries struct {
	refresh int // steps between full runs
	size    int // floats per state
	index   map[uint64]int32
	slots   []lstmCarrySlot
	mem     []float32
	free    []int32
	newest  int64 // newest bucket index a state has reached
}

func newLSTMCarries(refresh, size int) *lstmCarries {
	return &lstmCarries{refresh: refresh, size: size, index: map[uint64]int32{}}
}

// state returns the floats of slot i.
func (c *lstmCarries) state(i int32) []float32 {
	return c.mem[int(i)*c.size : int(i+1)*c.size : int(i+1)*c.size]
}

// stepping returns the slot of the series with key whose window ends at
// bucket last when its forecast can step its carried state, or -1 when
// it must run its window in full: no state, a bucket skipped or repeated,
// or refresh steps since the last full run.
func (c *lstmCarries) stepping(key uint64, last int64) int32 {
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
func (c *lstmCarries) slot(key uint64) (i int32, fresh bool) {
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
		c.slots = append(c.slots, lstmCarrySlot{})
		c.mem = append(c.mem, make([]float32, c.size)...)
	}
	c.slots[i] = lstmCarrySlot{key: key}
	c.index[key] = i
	return i, true
}

// prune frees the slots of series that have not advanced for refresh
// buckets.
func (c *lstmCarries) prune() {
	for i := range c.slots {
		s := &c.slots[i]
		if s.key != 0 && s.last+int64(c.refresh) < c.newest {
			delete(c.index, s.key)
			*s = lstmCarrySlot{}
			c.free = append(c.free, int32(i))
		}
	}
}

// ran records a forecast of the series with key whose window ends at
// bucket last: a full run with the given scale when stepped is false.
// A new series starts at an age spread by its key, so that series that
// appear together do not all run in full at the same closes.
func (c *lstmCarries) ran(i int32, last int64, scale float64, stepped, fresh bool) {
	s := &c.slots[i]
	s.last = last
	c.newest = max(c.newest, last)
	switch {
	case stepped:
		s.age++
	case fresh:
		s.age = int(s.key % uint64(c.refresh))
		s.scale = scale
	default:
		s.age = 0
		s.scale = scale
	}
}

// len returns the number of series with a state.
func (c *lstmCarries) len() int { return len(c.index) }
