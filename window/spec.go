package window

import (
	"fmt"
	"strings"
	"time"
)

// Width is the length of an event-time bucket.
type Width uint8

// The supported bucket widths. Hourly buckets are absolute hours aligned to
// the local hour; daily and weekly buckets follow the local calendar, so a
// day is 23 or 25 hours long across a daylight-saving change and weeks start
// on Monday at local midnight.
const (
	Hour Width = iota + 1
	Day
	Week
)

// ParseWidth parses "1h", "1d" or "1w" (also "hour", "day", "week").
func ParseWidth(s string) (Width, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1h", "h", "hour", "hourly":
		return Hour, nil
	case "1d", "d", "day", "daily":
		return Day, nil
	case "1w", "w", "week", "weekly":
		return Week, nil
	}
	return 0, fmt.Errorf("window: unknown bucket width %q (want 1h, 1d or 1w)", s)
}

// String returns the canonical name used in forecast records: "1h", "1d" or "1w".
func (w Width) String() string {
	switch w {
	case Hour:
		return "1h"
	case Day:
		return "1d"
	case Week:
		return "1w"
	}
	return fmt.Sprintf("Width(%d)", uint8(w))
}

// Longest returns the longest a bucket of this width lasts: an hour, 25
// hours for a day and 169 hours for a week that span a daylight-saving
// change.
func (w Width) Longest() time.Duration {
	switch w {
	case Hour:
		return time.Hour
	case Day:
		return 25 * time.Hour
	}
	return 169 * time.Hour
}

// Spec maps event times to bucket indexes and back. The zero Spec is not
// valid; build one with NewSpec. A Spec is an immutable value and safe for
// concurrent use.
//
// Bucket indexes are dense integers: consecutive buckets have consecutive
// indexes, so a gap between two indexes counts the buckets in between. For
// daily buckets the index is the number of local calendar days since
// 1970-01-01, for weekly buckets the number of local Monday-start weeks since
// the week containing 1970-01-01, and for hourly buckets the number of hours
// since the epoch, shifted by the sub-hour part of the zone's offset.
type Spec struct {
	width Width
	loc   *time.Location
	utc   bool
	sub   int64 // sub-hour part of the zone's offset, aligning hourly buckets
}

// NewSpec returns a Spec for the width in loc. A nil loc means UTC.
func NewSpec(width Width, loc *time.Location) (Spec, error) {
	if width < Hour || width > Week {
		return Spec{}, fmt.Errorf("window: invalid bucket width %d", width)
	}
	if loc == nil {
		loc = time.UTC
	}
	// Hourly buckets are absolute hours shifted by the sub-hour part of the
	// zone's offset (30 minutes for India), read at a fixed reference date so
	// that a Spec is the same whenever it is built. In the rare zones whose
	// daylight-saving shift is not a whole hour (Lord Howe) local hour
	// boundaries move by that part of the year; buckets stay aligned.
	_, off := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).In(loc).Zone()
	return Spec{width: width, loc: loc, utc: loc == time.UTC, sub: floorMod(int64(off), 3600)}, nil
}

// Width returns the bucket width.
func (s Spec) Width() Width { return s.width }

// Location returns the time zone buckets are aligned to.
func (s Spec) Location() *time.Location { return s.loc }

// Period returns the seasonal period in buckets: 24 for hourly buckets (hour
// of day), 7 for daily buckets (day of week) and 52 for weekly buckets (week
// of year).
func (s Spec) Period() int {
	switch s.width {
	case Hour:
		return 24
	case Day:
		return 7
	}
	return 52
}

// Index returns the index of the bucket containing t.
func (s Spec) Index(t time.Time) int64 {
	switch s.width {
	case Hour:
		return floorDiv(t.Unix()+s.sub, 3600)
	case Day:
		return s.civilDay(t)
	}
	return floorDiv(s.civilDay(t)+3, 7)
}

// Start returns the first instant of bucket i.
func (s Spec) Start(i int64) time.Time {
	switch s.width {
	case Hour:
		return time.Unix(i*3600-s.sub, 0).In(s.loc)
	case Day:
		return s.midnight(i)
	}
	return s.midnight(i*7 - 3)
}

// End returns the first instant after bucket i, which is Start(i+1).
func (s Spec) End(i int64) time.Time { return s.Start(i + 1) }

// Season returns the position of bucket i in the seasonal cycle, in
// [0, Period()): the local hour of day for hourly buckets, the day of week
// (Monday = 0) for daily buckets and the ISO week of the year (week 53 folded
// into 52) minus one for weekly buckets.
func (s Spec) Season(i int64) int {
	switch s.width {
	case Hour:
		return s.Start(i).Hour()
	case Day:
		return int(floorMod(i+3, 7))
	}
	_, wk := s.Start(i).ISOWeek()
	return min(wk, 52) - 1
}

// civilDay returns the number of days from 1970-01-01 to t's local date.
func (s Spec) civilDay(t time.Time) int64 {
	if s.utc {
		return floorDiv(t.Unix(), 86400)
	}
	y, m, d := t.In(s.loc).Date()
	return daysFromCivil(int64(y), int64(m), int64(d))
}

// midnight returns the first instant of the local calendar day with the given
// day number. Where midnight does not exist (a daylight-saving jump at 00:00)
// this is the first instant of the day that does.
func (s Spec) midnight(day int64) time.Time {
	y, m, d := civilFromDays(day)
	t := time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, s.loc)
	if t.Day() != int(d) {
		// Midnight falls in a daylight-saving gap and time.Date normalized it
		// to the previous evening: the day starts at the transition.
		_, end := t.ZoneBounds()
		t = end
	}
	return t
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// daysFromCivil converts a proleptic Gregorian date to days since 1970-01-01
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}
