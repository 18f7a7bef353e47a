package window

import (
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s unavailable: %v", name, err)
	}
	return loc
}

func TestParseWidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Width
		bad  bool
	}{
		{in: "1h", want: Hour},
		{in: "1d", want: Day},
		{in: "DAY", want: Day},
		{in: " 1w ", want: Week},
		{in: "2d", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseWidth(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseWidth(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseWidth(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseWidth(got.String()); back != got {
			t.Errorf("%v does not round-trip through String", got)
		}
	}
}

func TestSpecBuckets(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	kolkata := mustLoc(t, "Asia/Kolkata")
	saoPaulo := mustLoc(t, "America/Sao_Paulo")
	for _, tc := range []struct {
		name   string
		width  Width
		loc    *time.Location
		t      time.Time
		start  time.Time
		end    time.Time
		season int
	}{
		{
			name: "utc day", width: Day, loc: time.UTC,
			t:     time.Date(2024, 3, 5, 17, 4, 0, 0, time.UTC),
			start: time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC),
			end:   time.Date(2024, 3, 6, 0, 0, 0, 0, time.UTC),
			// 2024-03-05 is a Tuesday.
			season: 1,
		},
		{
			name: "utc day before epoch", width: Day, loc: time.UTC,
			t:      time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
			start:  time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
			end:    time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
			season: 2,
		},
		{
			name: "new york spring-forward day is 23h", width: Day, loc: ny,
			t:      time.Date(2024, 3, 10, 12, 0, 0, 0, ny),
			start:  time.Date(2024, 3, 10, 0, 0, 0, 0, ny),
			end:    time.Date(2024, 3, 11, 0, 0, 0, 0, ny),
			season: 6,
		},
		{
			name: "new york fall-back day is 25h", width: Day, loc: ny,
			t:      time.Date(2024, 11, 3, 23, 30, 0, 0, ny),
			start:  time.Date(2024, 11, 3, 0, 0, 0, 0, ny),
			end:    time.Date(2024, 11, 4, 0, 0, 0, 0, ny),
			season: 6,
		},
		{
			name: "new york local midnight is 04:00 utc in summer", width: Day, loc: ny,
			t:      time.Date(2024, 7, 1, 3, 59, 0, 0, time.UTC),
			start:  time.Date(2024, 6, 30, 0, 0, 0, 0, ny),
			end:    time.Date(2024, 7, 1, 0, 0, 0, 0, ny),
			season: 6,
		},
		{
			name: "sao paulo day starting at a dst gap", width: Day, loc: saoPaulo,
			t: time.Date(2018, 11, 4, 12, 0, 0, 0, saoPaulo),
			// Clocks jumped from 00:00 -03 to 01:00 -02: the day starts at 03:00 UTC.
			start:  time.Date(2018, 11, 4, 3, 0, 0, 0, time.UTC),
			end:    time.Date(2018, 11, 5, 0, 0, 0, 0, saoPaulo),
			season: 6,
		},
		{
			name: "utc hour", width: Hour, loc: time.UTC,
			t:      time.Date(2024, 3, 5, 17, 4, 0, 0, time.UTC),
			start:  time.Date(2024, 3, 5, 17, 0, 0, 0, time.UTC),
			end:    time.Date(2024, 3, 5, 18, 0, 0, 0, time.UTC),
			season: 17,
		},
		{
			name: "kolkata hour aligns to the half hour in utc", width: Hour, loc: kolkata,
			t:      time.Date(2024, 3, 5, 17, 4, 0, 0, kolkata),
			start:  time.Date(2024, 3, 5, 17, 0, 0, 0, kolkata),
			end:    time.Date(2024, 3, 5, 18, 0, 0, 0, kolkata),
			season: 17,
		},
		{
			name: "new york repeated hour is two buckets (first)", width: Hour, loc: ny,
			t:      time.Date(2024, 11, 3, 5, 30, 0, 0, time.UTC), // 01:30 EDT
			start:  time.Date(2024, 11, 3, 5, 0, 0, 0, time.UTC),
			end:    time.Date(2024, 11, 3, 6, 0, 0, 0, time.UTC),
			season: 1,
		},
		{
			name: "new york repeated hour is two buckets (second)", width: Hour, loc: ny,
			t:      time.Date(2024, 11, 3, 6, 30, 0, 0, time.UTC), // 01:30 EST
			start:  time.Date(2024, 11, 3, 6, 0, 0, 0, time.UTC),
			end:    time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC),
			season: 1,
		},
		{
			name: "utc week starts monday", width: Week, loc: time.UTC,
			t:      time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), // Sunday
			start:  time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC),
			end:    time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC),
			season: 9, // ISO week 10
		},
		{
			name: "new york week across spring forward", width: Week, loc: ny,
			t:      time.Date(2024, 3, 11, 0, 30, 0, 0, ny),
			start:  time.Date(2024, 3, 11, 0, 0, 0, 0, ny),
			end:    time.Date(2024, 3, 18, 0, 0, 0, 0, ny),
			season: 10,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSpec(tc.width, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			i := s.Index(tc.t)
			if got := s.Start(i); !got.Equal(tc.start) {
				t.Errorf("Start(Index(%v)) = %v, want %v", tc.t, got, tc.start)
			}
			if got := s.End(i); !got.Equal(tc.end) {
				t.Errorf("End = %v, want %v", got, tc.end)
			}
			if got := s.Season(i); got != tc.season {
				t.Errorf("Season = %d, want %d", got, tc.season)
			}
			if got := s.Index(tc.start); got != i {
				t.Errorf("Index(start) = %d, want %d", got, i)
			}
			if got := s.Index(tc.start.Add(-time.Nanosecond)); got != i-1 {
				t.Errorf("Index(start-1ns) = %d, want %d", got, i-1)
			}
			if got := s.Index(tc.end); got != i+1 {
				t.Errorf("Index(end) = %d, want %d", got, i+1)
			}
		})
	}
}

// TestSpecContiguous walks two years of buckets in zones with daylight
// saving and checks that buckets tile time without gaps or overlaps.
func TestSpecContiguous(t *testing.T) {
	for _, zone := range []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo"} {
		loc := mustLoc(t, zone)
		for _, w := range []Width{Hour, Day, Week} {
			s, err := NewSpec(w, loc)
			if err != nil {
				t.Fatal(err)
			}
			from := s.Index(time.Date(2018, 1, 1, 0, 0, 0, 0, loc))
			n := int64(730)
			if w == Hour {
				n = 24 * 400
			}
			for i := from; i < from+n; i++ {
				start, end := s.Start(i), s.End(i)
				if !end.After(start) {
					t.Fatalf("%s %v: bucket %d is empty: %v to %v", zone, w, i, start, end)
				}
				if got := s.Index(start); got != i {
					t.Fatalf("%s %v: Index(Start(%d)=%v) = %d", zone, w, i, start, got)
				}
				if got := s.Index(end.Add(-time.Nanosecond)); got != i {
					t.Fatalf("%s %v: Index(End(%d)-1ns) = %d", zone, w, i, got)
				}
				if season := s.Season(i); season < 0 || season >= s.Period() {
					t.Fatalf("%s %v: Season(%d) = %d outside [0, %d)", zone, w, i, season, s.Period())
				}
			}
		}
	}
}

func TestCivilDays(t *testing.T) {
	for day := int64(-800000); day < 800000; day += 997 {
		y, m, d := civilFromDays(day)
		if got := daysFromCivil(y, m, d); got != day {
			t.Fatalf("civil round trip of %d: %d-%d-%d -> %d", day, y, m, d, got)
		}
		want := time.Unix(day*86400, 0).UTC()
		if int(y) != want.Year() || time.Month(m) != want.Month() || int(d) != want.Day() {
			t.Fatalf("civilFromDays(%d) = %d-%d-%d, time package says %v", day, y, m, d, want)
		}
	}
}
