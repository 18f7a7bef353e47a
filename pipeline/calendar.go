package pipeline

import (
	"math"
	"slices"
	"time"

	"github.com/trendstream/trendstream/model"
	"github.com/trendstream/trendstream/window"
)

// calendar supplies a model's known-in-advance covariates per bucket: sin
// and cos of the position in the week and in the year for daily and
// weekly buckets (in the day and in the week for hourly ones), plus, when
// day flags are given, their event and SNAP flags. Values are cached per
// bucket. A calendar belongs to one model's goroutine.
type calendar struct {
	spec  window.Spec
	days  *DayFlags
	snaps []string // SNAP states, sorted
	width int
	base  int64     // bucket index of cache[0:width]
	cache []float32 // width values per bucket from base
	known []bool
}

var _ model.Calendar = (*calendar)(nil)

func newCalendar(spec window.Spec, days *DayFlags) *calendar {
	c := &calendar{spec: spec, days: days, width: 4}
	if days != nil {
		for s := range days.SNAP {
			c.snaps = append(c.snaps, s)
		}
		slices.Sort(c.snaps)
		c.width += 1 + len(c.snaps)
	}
	return c
}

// Width implements model.Calendar.
func (c *calendar) Width() int { return c.width }

// Covariates implements model.Calendar.
func (c *calendar) Covariates(bucket int64, dst []float32) {
	if c.cache == nil {
		c.base = bucket
	}
	if bucket < c.base {
		grow := int(c.base - bucket)
		c.cache = slices.Insert(c.cache, 0, make([]float32, grow*c.width)...)
		c.known = slices.Insert(c.known, 0, make([]bool, grow)...)
		c.base = bucket
	}
	i := int(bucket - c.base)
	if i >= len(c.known) {
		c.cache = append(c.cache, make([]float32, (i+1-len(c.known))*c.width)...)
		c.known = append(c.known, make([]bool, i+1-len(c.known))...)
	}
	vals := c.cache[i*c.width : (i+1)*c.width]
	if !c.known[i] {
		c.compute(bucket, vals)
		c.known[i] = true
	}
	copy(dst, vals)
}

func (c *calendar) compute(bucket int64, dst []float32) {
	t := c.spec.Start(bucket)
	var a, b float64 // phases in [0, 1)
	switch c.spec.Width() {
	case window.Hour:
		a = float64(t.Hour()) / 24
		b = float64(c.dow(t)) / 7
	default:
		a = float64(c.dow(t)) / 7
		b = float64(t.YearDay()-1) / 365.25
	}
	dst[0], dst[1] = float32(math.Sin(2*math.Pi*a)), float32(math.Cos(2*math.Pi*a))
	dst[2], dst[3] = float32(math.Sin(2*math.Pi*b)), float32(math.Cos(2*math.Pi*b))
	if c.days == nil {
		return
	}
	y, m, d := t.Date()
	day := int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Sub(c.days.First) / (24 * time.Hour))
	clear(dst[4:])
	if day < 0 || day >= len(c.days.Event) {
		return
	}
	if c.days.Event[day] {
		dst[4] = 1
	}
	for j, s := range c.snaps {
		if c.days.SNAP[s][day] {
			dst[5+j] = 1
		}
	}
}

// dow returns the day of the week, Monday 0.
func (c *calendar) dow(t time.Time) int { return (int(t.Weekday()) + 6) % 7 }
