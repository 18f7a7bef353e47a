package window

import (
	"math"
	"time"
)

// Sale is one validated sales observation, the unit a Partition consumes.
type Sale struct {
	// Time is the event time.
	Time time.Time
	// Qty is the number of units sold.
	Qty float64
	// Price is the unit price, or NaN when the event carried none.
	Price float64
	// Promo reports whether the sale happened under a promotion.
	Promo bool
}

// Bucket is one closed bucket of a series.
type Bucket struct {
	// Qty is the total quantity sold in the bucket.
	Qty float64
	// Price is the mean price of the bucket's events that carried one, or the
	// last known price when none did (0 before the series' first price).
	Price float32
	// Promo is the share of the bucket's events flagged as a promotion.
	Promo float32
}

// openBucket accumulates the events of a bucket that has not closed yet.
type openBucket struct {
	idx      int64
	qty      float64
	priceSum float64
	priceN   uint32
	promoN   uint32
	n        uint32
}

// Series is the event-time state of one series (store x SKU): its open
// buckets, a ring of its most recent closed buckets and features updated
// incrementally as buckets close. A Series belongs to one Partition and is
// not safe for concurrent use.
type Series struct {
	id     string
	serial uint64 // see Serial
	first  int64  // index of the series' first bucket
	closed int64  // index of the last closed bucket; first-1 when none closed

	// Seq is the caller's sequence number (an input offset) of the last
	// record applied to this series. Window only stores it; callers use it
	// to make replays idempotent.
	Seq int64

	open []openBucket // sorted by idx, all > closed

	ring  []Bucket // closed buckets; ring[(head+i)%len(ring)] is the i-th oldest
	head  int
	n     int
	saved int64 // closed was saved at this index (see Changes)
	pos   int   // index in the partition's series slice

	lastPrice float32
	level     float64
	trend     float64
	buckets   int64 // closed buckets since the first
	zeros     int64 // closed buckets with Qty == 0
	sinceSale int64 // closed buckets since the last with Qty > 0
	season    []float64
	seasonN   []uint32
}

func newSeries(id string, first int64, history, period int) *Series {
	return &Series{
		id:      id,
		first:   first,
		closed:  first - 1,
		saved:   first - 1,
		Seq:     -1,
		ring:    make([]Bucket, history),
		season:  make([]float64, period),
		seasonN: make([]uint32, period),
	}
}

// ID returns the series id, "STORE/SKU".
func (s *Series) ID() string { return s.id }

// Serial returns a number, from 1, that no other Series the partition has
// created shares: a series evicted and decoded again, or whose state
// DecodeSeries replaced, gets a new one. It identifies the state in
// memory, for state kept beside it.
func (s *Series) Serial() uint64 { return s.serial }

// First returns the index of the series' first bucket: the bucket of its
// earliest accepted event.
func (s *Series) First() int64 { return s.first }

// Closed returns the index of the series' last closed bucket, or First()-1
// when none has closed.
func (s *Series) Closed() int64 { return s.closed }

// Len returns the number of closed buckets held in the ring, at most the
// configured history.
func (s *Series) Len() int { return s.n }

// At returns the i-th oldest closed bucket held, 0 <= i < Len(). The bucket's
// index is Closed()-Len()+1+i.
func (s *Series) At(i int) Bucket {
	if i < 0 || i >= s.n {
		panic("window: bucket index out of range")
	}
	return s.ring[(s.head+i)%len(s.ring)]
}

// Last returns the most recent closed bucket; ok is false when none has closed.
func (s *Series) Last() (b Bucket, ok bool) {
	if s.n == 0 {
		return Bucket{}, false
	}
	return s.At(s.n - 1), true
}

// QtyTo appends the quantities of the last k closed buckets (oldest first,
// fewer if fewer are held) to dst and returns it.
func (s *Series) QtyTo(dst []float64, k int) []float64 {
	k = min(k, s.n)
	for i := s.n - k; i < s.n; i++ {
		dst = append(dst, s.ring[(s.head+i)%len(s.ring)].Qty)
	}
	return dst
}

// Changes reports the closed buckets that changed since the last call (or
// since the series was decoded): set is called, in index order, for every
// bucket closed since then that the ring still holds, and del for every
// bucket that has fallen out of the ring since then. Callers that store
// closed buckets under their own keys (see AppendBucket) mirror the ring
// that way, writing each bucket once.
func (s *Series) Changes(set func(idx int64, b Bucket), del func(idx int64)) {
	history := int64(len(s.ring))
	// Buckets after saved were never reported, and after a gap (see skip)
	// most of those before closed-history were not either.
	for idx := max(s.saved-history+1, s.first); idx <= min(s.closed-history, s.saved); idx++ {
		del(idx)
	}
	oldest := s.closed - int64(s.n) + 1
	for idx := max(s.saved+1, oldest); idx <= s.closed; idx++ {
		set(idx, s.At(int(idx-oldest)))
	}
	s.saved = s.closed
}

// Activity is what a series' idleness is judged by (see
// Partition.IdleFor), and which of its closed buckets a caller storing
// them (see Changes) has stored.
type Activity struct {
	// First is the series' first bucket and LastSale its last bucket with
	// sales, closed or open, First-1 when none sold.
	First, LastSale int64
	// LastOpen is its last open bucket, or its last closed one when none
	// is open. An evicted series' open buckets stay open until its next
	// event, however far the partition has closed.
	LastOpen int64
	// Stored is the range of closed buckets Changes has reported and not
	// yet deleted, empty when From > To.
	Stored struct{ From, To int64 }
}

// Activity returns the series' activity.
func (s *Series) Activity() Activity { return s.activity(s.saved, int64(len(s.ring))) }

// activity returns the series' activity when the buckets up to saved of
// a history of the given length are stored.
func (s *Series) activity(saved, history int64) Activity {
	a := Activity{First: s.first, LastSale: s.closed - s.sinceSale, LastOpen: s.closed}
	for _, o := range s.open {
		if o.qty != 0 {
			a.LastSale = o.idx
		}
		a.LastOpen = o.idx
	}
	a.Stored.From, a.Stored.To = max(s.first, saved-history+1), saved
	return a
}

// OpenBucket is the partial total of a bucket that has not closed yet.
type OpenBucket struct {
	// Index is the bucket index.
	Index int64
	// Qty is the quantity accepted so far.
	Qty float64
	// Events is the number of events accepted so far.
	Events int
}

// Open appends the series' open buckets, oldest first, to dst.
func (s *Series) Open(dst []OpenBucket) []OpenBucket {
	for _, o := range s.open {
		dst = append(dst, OpenBucket{Index: o.idx, Qty: o.qty, Events: int(o.n)})
	}
	return dst
}

// add accumulates a sale in bucket idx, which must be > s.closed.
func (s *Series) add(idx int64, sale *Sale) {
	if idx < s.first {
		s.first = idx
		s.closed = idx - 1
	}
	i := 0
	for i < len(s.open) && s.open[i].idx < idx {
		i++
	}
	if i == len(s.open) || s.open[i].idx != idx {
		s.open = append(s.open, openBucket{})
		copy(s.open[i+1:], s.open[i:])
		s.open[i] = openBucket{idx: idx}
	}
	o := &s.open[i]
	o.qty += sale.Qty
	o.n++
	if !math.IsNaN(sale.Price) {
		o.priceSum += sale.Price
		o.priceN++
	}
	if sale.Promo {
		o.promoN++
	}
}

// close closes bucket idx == s.closed+1, appending it to the ring and
// updating the features.
func (s *Series) close(idx int64, season int, cfg *Config) Bucket {
	b := Bucket{Price: s.lastPrice}
	if len(s.open) > 0 && s.open[0].idx == idx {
		o := s.open[0]
		b.Qty = o.qty
		if o.priceN > 0 {
			b.Price = float32(o.priceSum / float64(o.priceN))
			s.lastPrice = b.Price
		}
		b.Promo = float32(o.promoN) / float32(o.n)
		copy(s.open, s.open[1:])
		s.open = s.open[:len(s.open)-1]
	}
	s.closed = idx
	s.push(b)
	s.update(b.Qty, season, cfg)
	return b
}

// skip closes the next n buckets, which must have no sales, at once: they
// count in Buckets, ZeroShare and SinceSale, but the smoothed features
// (Holt level and trend, seasonal profile) and the ring do not see them.
// Callers close at least History more buckets one by one right after, so
// the ring and the smoothed features see a full history of zeros.
func (s *Series) skip(n int64) {
	s.closed += n
	s.buckets += n
	s.zeros += n
	s.sinceSale += n
}

func (s *Series) push(b Bucket) {
	if s.n < len(s.ring) {
		s.ring[(s.head+s.n)%len(s.ring)] = b
		s.n++
		return
	}
	s.ring[s.head] = b
	s.head = (s.head + 1) % len(s.ring)
}

// update folds a closed bucket's quantity into the incremental features.
func (s *Series) update(y float64, season int, cfg *Config) {
	if s.buckets == 0 {
		s.level, s.trend = y, 0
	} else {
		prev := s.level
		s.level = cfg.Alpha*y + (1-cfg.Alpha)*(s.level+s.trend)
		s.trend = cfg.Beta*(s.level-prev) + (1-cfg.Beta)*s.trend
	}
	s.buckets++
	if y == 0 {
		s.zeros++
		s.sinceSale++
	} else {
		s.sinceSale = 0
	}
	if s.seasonN[season] == 0 {
		s.season[season] = y
	} else {
		s.season[season] = cfg.Gamma*y + (1-cfg.Gamma)*s.season[season]
	}
	s.seasonN[season]++
}

// Features are a series' summary statistics as of its last closed bucket.
type Features struct {
	// Buckets is the number of closed buckets since the series' first.
	Buckets int64 `json:"buckets"`
	// MA7 and MA28 are the means of the last 7 and 28 closed buckets (of all
	// closed buckets when fewer).
	MA7  float64 `json:"ma7"`
	MA28 float64 `json:"ma28"`
	// Level and Trend are the Holt exponentially weighted level and trend
	// per bucket.
	Level float64 `json:"level"`
	Trend float64 `json:"trend"`
	// Seasonal is the seasonal profile: per position in the cycle (see
	// Spec.Season), the exponentially weighted mean quantity divided by the
	// mean over positions; nil until every position has been seen or when
	// the series never sold.
	Seasonal []float64 `json:"seasonal"`
	// ZeroShare is the share of closed buckets with no sales.
	ZeroShare float64 `json:"zero_share"`
	// SinceSale is the number of closed buckets since the last one with
	// sales (0 when the last closed bucket sold).
	SinceSale int64 `json:"since_sale"`
	// LastPrice is the last price seen, 0 when none.
	LastPrice float64 `json:"last_price"`
	// PromoShare is the mean promotion share of the last 28 closed buckets.
	PromoShare float64 `json:"promo_share"`
}

// Features returns the series' current features.
func (s *Series) Features() Features {
	f := Features{
		Buckets:   s.buckets,
		Level:     s.level,
		Trend:     s.trend,
		SinceSale: s.sinceSale,
		LastPrice: float64(s.lastPrice),
	}
	if s.buckets > 0 {
		f.ZeroShare = float64(s.zeros) / float64(s.buckets)
	}
	f.MA7 = s.mean(7, func(b Bucket) float64 { return b.Qty })
	f.MA28 = s.mean(28, func(b Bucket) float64 { return b.Qty })
	f.PromoShare = s.mean(28, func(b Bucket) float64 { return float64(b.Promo) })
	var sum float64
	for i, v := range s.season {
		if s.seasonN[i] == 0 {
			return f
		}
		sum += v
	}
	if sum > 0 {
		mean := sum / float64(len(s.season))
		f.Seasonal = make([]float64, len(s.season))
		for i, v := range s.season {
			f.Seasonal[i] = v / mean
		}
	}
	return f
}

func (s *Series) mean(k int, val func(Bucket) float64) float64 {
	k = min(k, s.n)
	if k == 0 {
		return 0
	}
	var sum float64
	for i := s.n - k; i < s.n; i++ {
		sum += val(s.ring[(s.head+i)%len(s.ring)])
	}
	return sum / float64(k)
}
