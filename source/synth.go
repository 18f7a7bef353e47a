package source

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// SynthConfig configures a Synthetic generator. The zero value of each
// field means its default.
type SynthConfig struct {
	// Stores and SKUs (per store) size the catalogue. The defaults are 3
	// and 20.
	Stores, SKUs int
	// Seed makes the generator deterministic. The default is 1.
	Seed uint64
	// Start is the first simulated instant, truncated to the hour. The
	// default is 2024-01-01 00:00 UTC.
	Start time.Time
	// Days is how many simulated days to generate; 0 means no end.
	Days int
	// OutOfOrder, Late, Duplicate and Malformed are the shares of records
	// altered to exercise the processor: events moved back within the
	// lateness, events moved two days back (dead-lettered as late),
	// copies of an earlier event, and records that are not JSON. The
	// defaults are 0.
	OutOfOrder, Late, Duplicate, Malformed float64
	// Lateness is the processor's allowed lateness, which out-of-order
	// events stay within. The default is one hour.
	Lateness time.Duration
}

// Synthetic generates a realistic, deterministic stream of retail sales:
// fast, medium and slow (intermittent) items with weekly seasonality,
// trends and changes of trend, price changes that move demand, promotions
// that lift it, product launches that ramp up, discontinuations that run
// down, and an intraday profile. Records come in event-time order, hour by
// simulated hour, apart from the configured alterations. Truth returns
// what drives each item's demand, so that what a processor detects can be
// measured against it.
type Synthetic struct {
	cfg   SynthConfig
	r     *rand.Rand
	items []item
	hour  time.Time // next simulated hour to generate
	day   int       // simulated day of hour
	queue []Event   // events of the current hour, in time order
	dups  []Event   // events waiting to be sent again
	now   time.Time // arrival time of the last record
	n     int       // events generated, for ids
	ev    Event
	key   []byte
	buf   []byte
}

type item struct {
	ItemTruth
	weekly     [7]float64
	basePrice  float64
	price      float64
	units      int // most units per transaction
	promoUntil int // promotion runs through this day
	promoLift  float64
}

// ItemTruth is what drives one synthetic item's demand: its rate, trend,
// launch and discontinuation, and its change of trend. Days count UTC
// calendar days from the generator's Start (day 0 holds Start).
type ItemTruth struct {
	// Store and SKU identify the item's series.
	Store, SKU string
	// Rate is the mean units per day at the base price, before weekly
	// seasonality, trend, ramps and promotions.
	Rate float64
	// Trend is the daily log growth of demand from Launch on.
	Trend float64
	// Launch is the first selling day, 0 for an item on sale from the
	// start. A launched item's demand ramps up linearly over its first
	// Ramp days.
	Launch, Ramp int
	// Stop is the last selling day, or -1 for an item never discontinued.
	// A discontinued item's demand runs down linearly to zero over the
	// Fade days up to Stop.
	Stop, Fade int
	// Shift is a change of trend: from day ShiftStart to day ShiftEnd the
	// daily log growth is Trend + Shift, and afterwards demand keeps the
	// level it reached. 0 for items without one.
	Shift                float64
	ShiftStart, ShiftEnd int
}

// Level returns the item's expected units on day d at its base price,
// without weekly seasonality and promotions: zero before Launch and after
// Stop. The generator draws each day's sales around it.
func (t *ItemTruth) Level(d int) float64 {
	if d < t.Launch || (t.Stop >= 0 && d > t.Stop) {
		return 0
	}
	growth := t.Trend * float64(d-t.Launch)
	if from := max(t.ShiftStart, t.Launch); t.Shift != 0 && d > from && t.ShiftEnd > from {
		growth += t.Shift * float64(min(d, t.ShiftEnd)-from)
	}
	level := t.Rate * math.Exp(growth)
	if t.Ramp > 0 && d-t.Launch < t.Ramp {
		level *= float64(d-t.Launch+1) / float64(t.Ramp+1)
	}
	if t.Stop >= 0 && t.Stop-d < t.Fade {
		level *= float64(t.Stop-d+1) / float64(t.Fade+1)
	}
	return level
}

// hourShare is the share of a day's sales in each hour: closed at night,
// peaks at lunch and after work.
var hourShare = func() [24]float64 {
	w := [24]float64{0, 0, 0, 0, 0, 0, 0.2, 0.5, 0.8, 1, 1.2, 1.6, 2, 1.6, 1.2, 1.1, 1.3, 1.8, 2.2, 1.8, 1.2, 0.7, 0.3, 0.1}
	var sum float64
	for _, v := range w {
		sum += v
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}()

// NewSynthetic returns a generator.
func NewSynthetic(cfg SynthConfig) (*Synthetic, error) {
	if cfg.Stores == 0 {
		cfg.Stores = 3
	}
	if cfg.SKUs == 0 {
		cfg.SKUs = 20
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Lateness == 0 {
		cfg.Lateness = time.Hour
	}
	for name, v := range map[string]float64{"OutOfOrder": cfg.OutOfOrder, "Late": cfg.Late, "Duplicate": cfg.Duplicate, "Malformed": cfg.Malformed} {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("source: %s rate %v outside [0, 1]", name, v)
		}
	}
	switch {
	case cfg.Stores < 1 || cfg.SKUs < 1:
		return nil, fmt.Errorf("source: %d stores x %d SKUs is empty", cfg.Stores, cfg.SKUs)
	case cfg.Days < 0:
		return nil, fmt.Errorf("source: Days %d is negative", cfg.Days)
	case cfg.Lateness < time.Minute:
		return nil, fmt.Errorf("source: Lateness %v is below a minute", cfg.Lateness)
	}
	g := &Synthetic{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), hour: cfg.Start.UTC().Truncate(time.Hour)}
	// Ramps, run-downs, late launches and changes of trend draw from a
	// stream of their own, so the items' other parameters stay those of
	// generators without them.
	shape := rand.New(rand.NewPCG(cfg.Seed, 0x7e5d))
	for s := range cfg.Stores {
		for k := range cfg.SKUs {
			g.items = append(g.items, g.newItem(shape, fmt.Sprintf("S%02d", s+1), fmt.Sprintf("SKU-%04d", k+1)))
		}
	}
	return g, nil
}

// newItem draws an item: 15% launch in the first 60 days and 8% later
// (day 60 to 299, never discontinued), each ramping up over 14 to 42
// days; 10% are discontinued between days 60 and 199, running down over
// 14 to 35 days; 30% change trend once, between days 30 and 269, for 14
// to 42 days, by 0.015 to 0.035 a day up or down (11% to 28% a week).
func (g *Synthetic) newItem(shape *rand.Rand, store, sku string) item {
	r := g.r
	it := item{ItemTruth: ItemTruth{Store: store, SKU: sku, Stop: -1}, units: 1}
	switch x := r.Float64(); {
	case x < 0.2: // fast movers
		it.Rate = 20 + 40*r.Float64()
		it.units = 3
	case x < 0.6:
		it.Rate = 3 + 12*r.Float64()
		it.units = 2
	default: // slow, intermittent
		it.Rate = 0.2 + 1.3*r.Float64()
	}
	weekend := 1.2 + 0.4*r.Float64()
	for d := range it.weekly {
		it.weekly[d] = 0.85 + 0.2*r.Float64()
	}
	it.weekly[time.Saturday] *= weekend
	it.weekly[time.Sunday] *= weekend * 0.9
	it.Trend = r.NormFloat64() * 0.004
	it.basePrice = math.Round((0.5+14.5*r.Float64())*100) / 100
	it.price = it.basePrice
	if r.Float64() < 0.15 {
		it.Launch = r.IntN(60)
	}
	if r.Float64() < 0.1 {
		it.Stop = 60 + r.IntN(140)
	}
	if shape.Float64() < 0.08 {
		it.Launch, it.Stop = 60+shape.IntN(240), -1
	}
	ramp, fade := 14+shape.IntN(29), 14+shape.IntN(22)
	if it.Launch > 0 {
		it.Ramp = ramp
	}
	if it.Stop >= 0 {
		it.Fade = fade
	}
	if shape.Float64() < 0.3 {
		it.ShiftStart = 30 + shape.IntN(240)
		it.ShiftEnd = it.ShiftStart + 14 + shape.IntN(29)
		it.Shift = 0.015 + 0.02*shape.Float64()
		if shape.IntN(2) == 0 {
			it.Shift = -it.Shift
		}
	}
	return it
}

// Truth returns, for every item in series order (stores, then SKUs),
// what drives its demand. It is fixed by the configuration and the seed.
func (g *Synthetic) Truth() []ItemTruth {
	out := make([]ItemTruth, len(g.items))
	for i := range g.items {
		out[i] = g.items[i].ItemTruth
	}
	return out
}

// Next implements Source. It returns io.EOF after Days simulated days.
func (g *Synthetic) Next() (Record, error) {
	if len(g.dups) > 0 && g.r.Float64() < 0.5 {
		g.ev = g.dups[0]
		g.dups = g.dups[1:]
		return g.record(g.now), nil
	}
	for len(g.queue) == 0 {
		if g.cfg.Days > 0 && g.day >= g.cfg.Days {
			if len(g.dups) > 0 {
				g.ev, g.dups = g.dups[0], g.dups[1:]
				return g.record(g.now), nil
			}
			return Record{}, io.EOF
		}
		g.generateHour()
	}
	g.ev = g.queue[0]
	g.queue = g.queue[1:]
	g.now = g.ev.Time
	r := g.r
	switch x := r.Float64(); {
	case x < g.cfg.Malformed:
		g.queue = slices.Insert(g.queue, 0, g.ev) // the real event follows
		g.key = append(g.key[:0], g.ev.Key()...)
		g.buf = fmt.Appendf(g.buf[:0], `{"event_id":"%s-broken","qty":`, g.ev.ID)
		return Record{Key: g.key, Value: g.buf, Time: g.now}, nil
	case x < g.cfg.Malformed+g.cfg.Late:
		g.ev.Time = g.ev.Time.Add(-48*time.Hour - g.cfg.Lateness)
	case x < g.cfg.Malformed+g.cfg.Late+g.cfg.OutOfOrder:
		g.ev.Time = g.ev.Time.Add(-time.Duration(r.Int64N(int64(g.cfg.Lateness) * 8 / 10)))
	}
	if r.Float64() < g.cfg.Duplicate {
		g.dups = append(g.dups, g.ev)
	}
	return g.record(g.now), nil
}

func (g *Synthetic) record(arrival time.Time) Record {
	g.key = append(g.key[:0], g.ev.Key()...)
	g.buf = g.ev.AppendJSON(g.buf[:0])
	return Record{Key: g.key, Value: g.buf, Time: arrival}
}

// generateHour simulates one hour of sales across the catalogue.
func (g *Synthetic) generateHour() {
	r := g.r
	h := g.hour.Hour()
	weekday := g.hour.Weekday()
	if h == 0 {
		g.startDay()
	}
	for i := range g.items {
		it := &g.items[i]
		level := it.Level(g.day)
		if level == 0 {
			continue
		}
		demand := level * it.weekly[weekday] * math.Pow(it.price/it.basePrice, -1.5)
		promo := g.day <= it.promoUntil
		price := it.price
		if promo {
			demand *= it.promoLift
			price = math.Round(price*80) / 100
		}
		units := demand * hourShare[h]
		tx := poisson(r, units/(float64(it.units+1)/2))
		for range tx {
			g.n++
			g.queue = append(g.queue, Event{
				ID:    fmt.Sprintf("syn%d-%d", g.cfg.Seed, g.n),
				Store: it.Store, SKU: it.SKU,
				Time:  g.hour.Add(time.Duration(r.Int64N(int64(time.Hour)))).Truncate(time.Second),
				Qty:   float64(1 + r.IntN(it.units)),
				Price: price, Promo: promo,
			})
		}
	}
	slices.SortStableFunc(g.queue, func(a, b Event) int { return a.Time.Compare(b.Time) })
	g.hour = g.hour.Add(time.Hour)
	if g.hour.Hour() == 0 {
		g.day++
	}
}

// startDay draws the day's price changes and promotions.
func (g *Synthetic) startDay() {
	r := g.r
	for i := range g.items {
		it := &g.items[i]
		if r.Float64() < 1.0/45 {
			it.price = math.Round(it.basePrice*(0.85+0.3*r.Float64())*100) / 100
		}
		if g.day > it.promoUntil && r.Float64() < 1.0/40 {
			it.promoUntil = g.day + 2 + r.IntN(5)
			it.promoLift = 1.5 + r.Float64()
		}
	}
}

// poisson draws a Poisson variate: by multiplication for small means, from
// a rounded normal approximation for large ones.
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
