package source

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// M5 is a dataset in the format of the M5 forecasting competition:
// sales_train.csv, and optionally sales_test.csv and calendar.csv (see
// PROTOCOL.md in the shared material).
type M5 struct {
	// IDs are the series ids, "STORE/SKU", in file order.
	IDs []string
	// Sales holds each series' daily units, train days then test days.
	Sales [][]float64
	// Train is the number of days in sales_train.csv.
	Train int
	// FirstDay is the date of d_1: from the calendar, or 2011-01-29.
	FirstDay time.Time
	// Calendar is nil when calendar.csv is absent.
	Calendar *M5Calendar
}

// M5Calendar holds the known-in-advance columns of calendar.csv, one
// entry per day from d_1.
type M5Calendar struct {
	// Event is true on days with a named event.
	Event []bool
	// SNAP maps a state ("TX") to its SNAP days.
	SNAP map[string][]bool
}

// Days returns the number of days of sales.
func (m *M5) Days() int {
	if len(m.Sales) == 0 {
		return 0
	}
	return len(m.Sales[0])
}

// Date returns the date of day index i (0 is d_1).
func (m *M5) Date(i int) time.Time { return m.FirstDay.AddDate(0, 0, i) }

// DefaultM5Start is d_1 when no calendar says otherwise.
var DefaultM5Start = time.Date(2011, 1, 29, 0, 0, 0, 0, time.UTC)

// ReadM5 reads an M5-format directory.
func ReadM5(dir string) (*M5, error) {
	m := &M5{FirstDay: DefaultM5Start}
	ids, train, err := readM5Sales(filepath.Join(dir, "sales_train.csv"), 1)
	if err != nil {
		return nil, err
	}
	m.IDs, m.Sales, m.Train = ids, train, len(train[0])
	testIDs, test, err := readM5Sales(filepath.Join(dir, "sales_test.csv"), m.Train+1)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if len(testIDs) != len(ids) {
			return nil, fmt.Errorf("%w: sales_test.csv has %d series, sales_train.csv %d", ErrFormat, len(testIDs), len(ids))
		}
		for i := range ids {
			if testIDs[i] != ids[i] {
				return nil, fmt.Errorf("%w: sales_test.csv row %d is %s, sales_train.csv has %s", ErrFormat, i+1, testIDs[i], ids[i])
			}
			m.Sales[i] = append(m.Sales[i], test[i]...)
		}
	}
	cal, first, err := ReadM5Calendar(filepath.Join(dir, "calendar.csv"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if len(cal.Event) < m.Days() {
			return nil, fmt.Errorf("%w: calendar.csv has %d days, sales %d", ErrFormat, len(cal.Event), m.Days())
		}
		m.Calendar, m.FirstDay = cal, first
	}
	return m, nil
}

// SeriesID converts an M5 id such as FOODS_3_001_TX_3_validation to the
// series id "TX_3/FOODS_3_001".
func SeriesID(m5 string) (string, error) {
	m5 = strings.TrimSuffix(strings.TrimSuffix(m5, "_validation"), "_evaluation")
	parts := strings.Split(m5, "_")
	if len(parts) < 3 {
		return "", fmt.Errorf("%w: M5 id %q has no item and store parts", ErrFormat, m5)
	}
	store := strings.Join(parts[len(parts)-2:], "_")
	item := strings.Join(parts[:len(parts)-2], "_")
	return store + "/" + item, nil
}

func readM5Sales(path string, firstDay int) ([]string, [][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	if len(head) < 2 || head[0] != "id" || head[1] != "d_"+strconv.Itoa(firstDay) {
		return nil, nil, fmt.Errorf("%w: %s: header must be id,d_%d,...", ErrFormat, path, firstDay)
	}
	days := len(head) - 1
	var ids []string
	var sales [][]float64
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		id, err := SeriesID(rec[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		row := make([]float64, days)
		for j, v := range rec[1:] {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil || q < 0 || math.IsInf(q, 0) {
				return nil, nil, fmt.Errorf("%w: %s line %d, %s: %q is not a quantity", ErrFormat, path, line, head[j+1], v)
			}
			row[j] = q
		}
		ids = append(ids, id)
		sales = append(sales, row)
	}
	if len(ids) == 0 {
		return nil, nil, fmt.Errorf("%w: %s has no series", ErrFormat, path)
	}
	return ids, sales, nil
}

// ReadM5Calendar reads an M5-format calendar.csv: the event flags and SNAP
// days of each day from the first, and the first day's date.
func ReadM5Calendar(path string) (*M5Calendar, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, need := range []string{"date", "event_name_1", "event_name_2"} {
		if _, ok := col[need]; !ok {
			return nil, time.Time{}, fmt.Errorf("%w: %s lacks column %s", ErrFormat, path, need)
		}
	}
	cal := &M5Calendar{SNAP: map[string][]bool{}}
	var first time.Time
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		if line == 2 {
			if first, err = time.Parse("1/2/2006", rec[col["date"]]); err != nil {
				return nil, time.Time{}, fmt.Errorf("%w: %s line 2: %v", ErrFormat, path, err)
			}
		}
		cal.Event = append(cal.Event, rec[col["event_name_1"]] != "NA" || rec[col["event_name_2"]] != "NA")
		for name, i := range col {
			if state, ok := strings.CutPrefix(name, "snap_"); ok {
				cal.SNAP[state] = append(cal.SNAP[state], rec[i] == "1")
			}
		}
	}
	return cal, first, nil
}

// Events returns the dataset's days replayed as sales events in event-time
// order, as the backtest protocol prescribes: every day with units > 0 is
// one event at 12:00 UTC; days are in order and, within a day, series in
// file order. Event ids are "<series>/d_<day>".
func (m *M5) Events() Source { return &m5Source{m: m, price: math.NaN()} }

type m5Source struct {
	m      *M5
	day, i int
	ev     Event
	price  float64
	buf    []byte
}

func (s *m5Source) Next() (Record, error) {
	for s.day < s.m.Days() {
		for s.i < len(s.m.IDs) {
			i := s.i
			s.i++
			q := s.m.Sales[i][s.day]
			if q <= 0 {
				continue
			}
			id := s.m.IDs[i]
			store, sku, _ := strings.Cut(id, "/")
			s.ev = Event{ID: id + "/d_" + strconv.Itoa(s.day+1), Store: store, SKU: sku,
				Time: s.m.Date(s.day).Add(12 * time.Hour), Qty: q, Price: s.price}
			s.buf = s.ev.AppendJSON(s.buf[:0])
			return Record{Key: []byte(id), Value: s.buf, Time: s.ev.Time}, nil
		}
		s.i = 0
		s.day++
	}
	return Record{}, io.EOF
}

// WriteM5 writes m to dir in the M5 format: sales_train.csv with the first
// m.Train days, sales_test.csv with the others when there are any, and
// calendar.csv when m.Calendar is set. Series ids are written as
// ITEM_STORE_validation.
func WriteM5(dir string, m *M5) error {
	ids := make([]string, len(m.IDs))
	for i, id := range m.IDs {
		store, item, ok := strings.Cut(id, "/")
		if !ok {
			return fmt.Errorf("%w: series id %q is not STORE/ITEM", ErrFormat, id)
		}
		ids[i] = item + "_" + store + "_validation"
	}
	write := func(name string, from, to int) error {
		var b strings.Builder
		b.WriteString("id")
		for d := from; d < to; d++ {
			fmt.Fprintf(&b, ",d_%d", d+1)
		}
		b.WriteByte('\n')
		for i, row := range m.Sales {
			b.WriteString(ids[i])
			for _, q := range row[from:to] {
				b.WriteByte(',')
				b.WriteString(strconv.FormatFloat(q, 'f', -1, 64))
			}
			b.WriteByte('\n')
		}
		return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
	}
	if err := write("sales_train.csv", 0, m.Train); err != nil {
		return err
	}
	if m.Days() > m.Train {
		if err := write("sales_test.csv", m.Train, m.Days()); err != nil {
			return err
		}
	}
	if m.Calendar == nil {
		return nil
	}
	var b strings.Builder
	states := make([]string, 0, len(m.Calendar.SNAP))
	for s := range m.Calendar.SNAP {
		states = append(states, s)
	}
	slices.Sort(states)
	b.WriteString("date,wm_yr_wk,weekday,wday,month,year,event_name_1,event_type_1,event_name_2,event_type_2")
	for _, s := range states {
		b.WriteString(",snap_" + s)
	}
	b.WriteByte('\n')
	for d, ev := range m.Calendar.Event {
		t := m.Date(d)
		name := "NA"
		if ev {
			name = "Event"
		}
		fmt.Fprintf(&b, "%d/%d/%d,0,%s,%d,%d,%d,%s,NA,NA,NA", t.Month(), t.Day(), t.Year(), t.Weekday(), (int(t.Weekday())+1)%7+1, t.Month(), t.Year(), name)
		for _, s := range states {
			snap := 0
			if m.Calendar.SNAP[s][d] {
				snap = 1
			}
			fmt.Fprintf(&b, ",%d", snap)
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(dir, "calendar.csv"), []byte(b.String()), 0o644)
}
