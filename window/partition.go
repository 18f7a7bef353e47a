package window

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// ErrLate is returned by Partition.Add for an event whose bucket has already
// closed: it arrived later than the allowed lateness.
var ErrLate = errors.New("window: event behind watermark")

// Config configures a Partition. The zero value of every field but Width
// means its default.
type Config struct {
	// Width is the bucket width. Required.
	Width Width
	// Location is the time zone buckets align to. The default is UTC.
	Location *time.Location
	// Lateness is how far behind the partition's maximum event time an event
	// may be and still be counted: the watermark is the maximum event time
	// minus Lateness, and a bucket closes once the watermark reaches its end.
	// Zero means no lateness: a bucket closes as soon as an event of a later
	// bucket arrives. Negative values are invalid.
	Lateness time.Duration
	// History is the number of closed buckets each series keeps, at least
	// 28. It must cover the longest window a model reads (input window plus
	// horizon for training). The default is 84.
	History int
	// Alpha and Beta are the smoothing factors of the Holt level and trend
	// features, in (0, 1]. The defaults are 0.1 and 0.05.
	Alpha, Beta float64
	// Gamma is the smoothing factor of the seasonal profile, in (0, 1]. The
	// default is 0.1.
	Gamma float64
}

func (c *Config) setDefaults() error {
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.History == 0 {
		c.History = 84
	}
	if c.Alpha == 0 {
		c.Alpha = 0.1
	}
	if c.Beta == 0 {
		c.Beta = 0.05
	}
	if c.Gamma == 0 {
		c.Gamma = 0.1
	}
	switch {
	case c.Lateness < 0:
		return fmt.Errorf("window: Lateness %v is negative", c.Lateness)
	case c.History < 28:
		return fmt.Errorf("window: History %d is below 28 buckets", c.History)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return fmt.Errorf("window: Alpha %v is outside (0, 1]", c.Alpha)
	case !(c.Beta > 0 && c.Beta <= 1):
		return fmt.Errorf("window: Beta %v is outside (0, 1]", c.Beta)
	case !(c.Gamma > 0 && c.Gamma <= 1):
		return fmt.Errorf("window: Gamma %v is outside (0, 1]", c.Gamma)
	}
	return nil
}

// noEvent marks a partition that has not seen an event yet.
const noEvent = math.MinInt64

// Partition holds the event-time state of one input partition: its
// watermark and its series. Buckets close in index order across all series
// of the partition as the watermark passes their end; a series' buckets from
// its first event on are all closed, with zero quantity where it had no
// events.
//
// A Partition is owned by one goroutine and is not safe for concurrent use.
type Partition struct {
	cfg  Config
	spec Spec

	maxEvent   int64 // unix nanoseconds, noEvent before the first event
	lastClosed int64 // every bucket <= lastClosed is closed
	nextEnd    int64 // End(lastClosed+1) in unix nanoseconds

	// hot caches the last bucket an event fell into.
	hotStart, hotEnd, hotIdx int64

	series  []*Series // sorted by id when sorted is set; Advance sorts
	sorted  bool
	serials uint64 // Series created
	byID    map[string]*Series
	closing []*Series
	skipped int64 // buckets closed without being reported (see Advance)
}

// newSeries returns a new Series with the next serial number.
func (p *Partition) newSeries(id string, first int64) *Series {
	p.serials++
	s := newSeries(id, first, p.cfg.History, p.spec.Period())
	s.serial = p.serials
	return s
}

// NewPartition returns an empty Partition.
func NewPartition(cfg Config) (*Partition, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	spec, err := NewSpec(cfg.Width, cfg.Location)
	if err != nil {
		return nil, err
	}
	return &Partition{
		cfg:      cfg,
		spec:     spec,
		maxEvent: noEvent,
		byID:     make(map[string]*Series),
		hotStart: 1,
		hotEnd:   0,
	}, nil
}

// Spec returns the partition's bucket spec.
func (p *Partition) Spec() Spec { return p.spec }

// Config returns the partition's configuration with defaults filled in.
func (p *Partition) Config() Config { return p.cfg }

// Watermark returns the partition's watermark, the maximum event time seen
// minus the allowed lateness; ok is false before the first event.
func (p *Partition) Watermark() (wm time.Time, ok bool) {
	if p.maxEvent == noEvent {
		return time.Time{}, false
	}
	return time.Unix(0, p.maxEvent-int64(p.cfg.Lateness)).In(p.spec.loc), true
}

// LastClosed returns the index of the last closed bucket; ok is false before
// the first event.
func (p *Partition) LastClosed() (idx int64, ok bool) {
	return p.lastClosed, p.maxEvent != noEvent
}

// IdleFor returns how long, in event time, the watermark is past the end
// of a series' last bucket with sales (the start of its first bucket when
// it never sold), or zero if one of its buckets has not closed for the
// partition yet.
func (p *Partition) IdleFor(a Activity) time.Duration {
	wm, ok := p.Watermark()
	if !ok || a.LastOpen > p.lastClosed {
		return 0
	}
	return max(wm.Sub(p.spec.End(a.LastSale)), 0)
}

// Skipped returns the number of buckets that watermark jumps closed
// without reporting them (see Advance).
func (p *Partition) Skipped() int64 { return p.skipped }

// Len returns the number of series.
func (p *Partition) Len() int { return len(p.series) }

// Series returns the series with the given id, or nil. Looking up with a
// []byte converted in the call, p.Series(string(b)), does not allocate.
func (p *Partition) Series(id string) *Series { return p.byID[id] }

// Each calls fn for every series in id order until fn returns false.
func (p *Partition) Each(fn func(*Series) bool) {
	p.sort()
	for _, s := range p.series {
		if !fn(s) {
			return
		}
	}
}

// Late reports whether an event at t would be rejected as late.
func (p *Partition) Late(t time.Time) bool {
	return p.maxEvent != noEvent && p.index(t) <= p.lastClosed
}

// Add counts a sale for the series id, creating the series on its first
// sale. It returns ErrLate, and changes nothing, when the sale's bucket has
// already closed, for the partition or for the series: a series' state may
// be ahead of its partition's after a crash stored the one and not the
// other. Add advances the watermark but does not close buckets: call
// Advance after it.
func (p *Partition) Add(id []byte, sale *Sale) (*Series, error) {
	idx := p.index(sale.Time)
	ns := sale.Time.UnixNano()
	s := p.byID[string(id)]
	if s != nil && s.closed >= s.first && idx <= s.closed {
		return nil, ErrLate
	}
	if p.maxEvent == noEvent {
		p.maxEvent = ns
		p.setLastClosed(p.spec.Index(p.watermarkTime()) - 1)
	} else if idx <= p.lastClosed {
		return nil, ErrLate
	}
	if s == nil {
		s = p.newSeries(string(id), idx)
		p.insert(s)
	}
	s.add(idx, sale)
	if ns > p.maxEvent {
		p.maxEvent = ns
	}
	return s, nil
}

// Ready reports whether the watermark has passed the end of the next bucket
// to close, so that Advance would close at least one bucket.
func (p *Partition) Ready() bool {
	return p.maxEvent != noEvent && p.maxEvent-int64(p.cfg.Lateness) >= p.nextEnd
}

// Advance closes, in index order, every bucket whose end the watermark has
// reached. For each closed bucket it calls fn with the bucket's index and the
// series that closed it (every series whose first bucket is at or before
// it), in id order; buckets no series has reached yet close silently. The
// slice is reused after fn returns. If fn returns an error Advance stops
// and returns it; the bucket it was called for stays closed.
//
// However far the watermark moved, fn is called for at most the last
// History buckets: the buckets before them close without being reported
// (counted in Skipped), and series catch up over long runs without sales
// in time and memory bounded by History (see catchUp). A stray event far
// ahead of the rest, or a first one far behind, thus costs at most
// History closes.
func (p *Partition) Advance(fn func(idx int64, closed []*Series) error) error {
	p.sort()
	if p.Ready() {
		p.skipGap()
	}
	for p.Ready() {
		idx := p.lastClosed + 1
		season := p.spec.Season(idx)
		p.closing = p.closing[:0]
		for _, s := range p.series {
			if s.first > idx {
				continue
			}
			// A series restored from an older state may lag: close the
			// buckets it missed, then this one.
			p.catchUp(s, idx-1)
			if s.closed < idx {
				s.close(idx, season, &p.cfg)
			}
			p.closing = append(p.closing, s)
		}
		p.setLastClosed(idx)
		if len(p.closing) == 0 {
			continue
		}
		if err := fn(idx, p.closing); err != nil {
			return err
		}
	}
	return nil
}

// AdvanceTo raises the watermark to wm, as if an event had arrived at wm
// plus the lateness, and closes the buckets that ends, as Advance does. It
// does nothing before the first event or when the watermark is already
// past wm. Use it to close the last buckets of a finite input, or to move
// an idle partition's watermark forward.
func (p *Partition) AdvanceTo(wm time.Time, fn func(idx int64, closed []*Series) error) error {
	if p.maxEvent == noEvent {
		return nil
	}
	p.maxEvent = max(p.maxEvent, wm.UnixNano()+int64(p.cfg.Lateness))
	return p.Advance(fn)
}

// skipGap closes without reporting the buckets the watermark has passed
// but for the last History, when there are more.
func (p *Partition) skipGap() {
	last := p.spec.Index(p.watermarkTime()) - 1 // the last bucket whose end the watermark reached
	to := last - int64(p.cfg.History)
	if to <= p.lastClosed {
		return
	}
	for _, s := range p.series {
		if s.first <= to {
			p.catchUp(s, to)
		}
	}
	p.skipped += to - p.lastClosed
	p.setLastClosed(to)
}

// catchUp closes a series' buckets up to and including to. Of a run of
// buckets without sales longer than the series' history, only the last
// History close one by one; the ones before are skipped (see Series.skip).
func (p *Partition) catchUp(s *Series, to int64) {
	for s.closed < to {
		end := to // the end of the run of buckets without sales from s.closed+1
		if len(s.open) > 0 && s.open[0].idx <= to {
			end = s.open[0].idx - 1
		}
		if n := end - s.closed - int64(len(s.ring)); n > 0 {
			s.skip(n)
		}
		next := s.closed + 1
		s.close(next, p.spec.Season(next), &p.cfg)
	}
}

func (p *Partition) setLastClosed(idx int64) {
	p.lastClosed = idx
	p.nextEnd = p.spec.End(idx + 1).UnixNano()
}

func (p *Partition) watermarkTime() time.Time {
	return time.Unix(0, p.maxEvent-int64(p.cfg.Lateness))
}

// index returns the bucket index of t, using a one-bucket cache because
// consecutive events mostly share a bucket.
func (p *Partition) index(t time.Time) int64 {
	ns := t.UnixNano()
	if ns >= p.hotStart && ns < p.hotEnd {
		return p.hotIdx
	}
	idx := p.spec.Index(t)
	p.hotIdx = idx
	p.hotStart = p.spec.Start(idx).UnixNano()
	p.hotEnd = p.spec.End(idx).UnixNano()
	return idx
}

// insert adds a series in constant time; the next close or Each sorts.
func (p *Partition) insert(s *Series) {
	s.pos = len(p.series)
	p.series = append(p.series, s)
	p.byID[s.id] = s
	p.sorted = false
}

// Evict removes a series from the partition in constant time, to bound
// memory: its buckets stop closing until the caller decodes it again
// (with its stored state), when it catches up with zero buckets. The
// caller stores its state first.
func (p *Partition) Evict(s *Series) {
	if s == nil || p.byID[s.id] != s {
		return
	}
	last := p.series[len(p.series)-1]
	p.series[s.pos] = last
	last.pos = s.pos
	p.series[len(p.series)-1] = nil
	p.series = p.series[:len(p.series)-1]
	delete(p.byID, s.id)
	p.sorted = false
}

// Idlest appends to dst the n series (or all, if fewer) with the lowest
// Seq, the least recently updated ones, and returns it.
func (p *Partition) Idlest(dst []*Series, n int) []*Series {
	start := len(dst)
	dst = append(dst, p.series...)
	all := dst[start:]
	slices.SortFunc(all, func(a, b *Series) int { return cmp.Compare(a.Seq, b.Seq) })
	n = min(n, len(all))
	clear(all[n:])
	return dst[:start+n]
}

// Adopt adds back a series evicted from this partition. It does nothing if
// the partition holds a series with the same id.
func (p *Partition) Adopt(s *Series) {
	if p.byID[s.id] == nil {
		p.insert(s)
	}
}

// sort orders the series by id, so closes visit them in a stable order
// whatever the order they were added or evicted in.
func (p *Partition) sort() {
	if p.sorted {
		return
	}
	slices.SortFunc(p.series, func(a, b *Series) int { return strings.Compare(a.id, b.id) })
	for i, s := range p.series {
		s.pos = i
	}
	p.sorted = true
}
