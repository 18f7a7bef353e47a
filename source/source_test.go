package source_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trendstream/trendstream/pipeline"
	"github.com/trendstream/trendstream/source"
)

// drain reads a source to the end, copying records.
func drain(t testing.TB, s source.Source) []source.Record {
	t.Helper()
	var out []source.Record
	for {
		r, err := s.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, source.Record{Key: append([]byte(nil), r.Key...), Value: append([]byte(nil), r.Value...), Time: r.Time})
	}
}

func decoder(t testing.TB) *pipeline.Decoder {
	t.Helper()
	limits := pipeline.DefaultLimits()
	limits.MaxFuture, limits.MaxPast = -1, -1
	d, err := pipeline.NewDecoder(limits)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSeriesID(t *testing.T) {
	for in, want := range map[string]string{
		"FOODS_3_001_TX_3_validation": "TX_3/FOODS_3_001",
		"FOODS_3_001_TX_3_evaluation": "TX_3/FOODS_3_001",
		"HOBBIES_1_234_CA_1":          "CA_1/HOBBIES_1_234",
	} {
		if got, err := source.SeriesID(in); err != nil || got != want {
			t.Errorf("SeriesID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := source.SeriesID("X_1"); !errors.Is(err, source.ErrFormat) {
		t.Errorf("short id: %v", err)
	}
}

func TestM5(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "sales_train.csv", "id,d_1,d_2,d_3\nA_1_TX_3_validation,0,2,0\nB_2_TX_3_validation,1,0,3\n")
	write(t, dir, "sales_test.csv", "id,d_4,d_5\nA_1_TX_3_validation,5,0\nB_2_TX_3_validation,0,1\n")
	write(t, dir, "calendar.csv", "date,wm_yr_wk,weekday,wday,month,year,event_name_1,event_type_1,event_name_2,event_type_2,snap_TX\n"+
		"3/1/2012,1,Thursday,6,3,2012,NA,NA,NA,NA,0\n3/2/2012,1,Friday,7,3,2012,Easter,Cultural,NA,NA,1\n"+
		"3/3/2012,1,Saturday,1,3,2012,NA,NA,NA,NA,1\n3/4/2012,1,Sunday,2,3,2012,NA,NA,NA,NA,0\n"+
		"3/5/2012,1,Monday,3,3,2012,NA,NA,Other,X,0\n3/6/2012,1,Tuesday,4,3,2012,NA,NA,NA,NA,0\n")
	m, err := source.ReadM5(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Train != 3 || m.Days() != 5 || fmt.Sprint(m.IDs) != "[TX_3/A_1 TX_3/B_2]" {
		t.Fatalf("train %d days %d ids %v", m.Train, m.Days(), m.IDs)
	}
	if !m.FirstDay.Equal(time.Date(2012, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("FirstDay %v", m.FirstDay)
	}
	if fmt.Sprint(m.Calendar.Event[:5]) != "[false true false false true]" || fmt.Sprint(m.Calendar.SNAP["TX"][:3]) != "[false true true]" {
		t.Errorf("calendar %+v", m.Calendar)
	}
	d := decoder(t)
	var got []string
	for _, r := range drain(t, m.Events()) {
		var ev pipeline.Event
		if err := d.Decode(r.Key, r.Value, time.Now(), &ev); err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		if !ev.Time.Equal(r.Time) || ev.Time.Hour() != 12 {
			t.Errorf("event time %v, record time %v", ev.Time, r.Time)
		}
		got = append(got, fmt.Sprintf("%s@%s=%v", r.Key, ev.Time.Format("01-02"), ev.Qty))
	}
	want := "[TX_3/B_2@03-01=1 TX_3/A_1@03-02=2 TX_3/B_2@03-03=3 TX_3/A_1@03-04=5 TX_3/B_2@03-05=1]"
	if fmt.Sprint(got) != want {
		t.Errorf("events\n got %v\nwant %s", got, want)
	}

	// WriteM5 writes what ReadM5 reads.
	out := t.TempDir()
	if err := source.WriteM5(out, m); err != nil {
		t.Fatal(err)
	}
	back, err := source.ReadM5(out)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back.IDs, back.Sales, back.Train, back.FirstDay, back.Calendar.Event, back.Calendar.SNAP) !=
		fmt.Sprint(m.IDs, m.Sales, m.Train, m.FirstDay, m.Calendar.Event, m.Calendar.SNAP) {
		t.Errorf("WriteM5 then ReadM5 changed the data:\n%+v\n%+v", back, m)
	}

	// Without test and calendar files.
	os.Remove(filepath.Join(dir, "sales_test.csv"))
	os.Remove(filepath.Join(dir, "calendar.csv"))
	m, err = source.ReadM5(dir)
	if err != nil || m.Days() != 3 || m.Calendar != nil || !m.FirstDay.Equal(source.DefaultM5Start) {
		t.Errorf("train only: %v, %+v", err, m)
	}
	write(t, dir, "sales_test.csv", "id,d_4\nB_2_TX_3_validation,5\nA_1_TX_3_validation,0\n")
	if _, err := source.ReadM5(dir); !errors.Is(err, source.ErrFormat) {
		t.Errorf("mismatched test ids: %v", err)
	}
	write(t, dir, "sales_train.csv", "id,d_1\nA_1_TX_3_validation,x\n")
	if _, err := source.ReadM5(dir); !errors.Is(err, source.ErrFormat) {
		t.Errorf("bad quantity: %v", err)
	}
}

func TestM5SharedData(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "data", "m5-tx3-foods3")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("shared M5 data not available")
	}
	m, err := source.ReadM5(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.IDs) != 413 || m.Train != 1913 || m.Days() != 1941 || m.Calendar == nil {
		t.Errorf("%d series, %d train days, %d days", len(m.IDs), m.Train, m.Days())
	}
	if got := m.Date(m.Train - 1).Format("2006-01-02"); got != "2016-04-24" {
		t.Errorf("origin date %s, want 2016-04-24", got)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	csvPath := write(t, dir, "ev.csv", "event_id,store,sku,ts,qty,price,promo\n"+
		"e1,S1,A,2024-05-01T10:00:00Z,2,1.5,true\n"+
		"e2,S1,B,2024-05-01T11:00:00Z,1,,\n"+
		"e3,S1,A,2024-05-01T12:00:00Z,lots,1,0\n")
	f, err := source.OpenFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	recs := drain(t, f)
	f.Close()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	d := decoder(t)
	var ev pipeline.Event
	if err := d.Decode(recs[0].Key, recs[0].Value, time.Now(), &ev); err != nil || ev.Qty != 2 || ev.Price != 1.5 || !ev.Promo {
		t.Errorf("row 1: %v %+v", err, ev)
	}
	if err := d.Decode(recs[1].Key, recs[1].Value, time.Now(), &ev); err != nil || !math.IsNaN(ev.Price) || ev.Promo {
		t.Errorf("row 2: %v %+v", err, ev)
	}
	var inv *pipeline.InvalidError
	if err := d.Decode(recs[2].Key, recs[2].Value, time.Now(), &ev); !errors.As(err, &inv) || inv.Reason != pipeline.ReasonInvalidField {
		t.Errorf("a bad row must still become a record the processor dead-letters: %v", err)
	}

	jsonl := write(t, dir, "ev.jsonl", `{"event_id":"e1","store":"S1","sku":"A","ts":"2024-05-01T10:00:00Z","qty":2,"x":1}`+"\n\nnot json\n")
	f, err = source.OpenFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	recs = drain(t, f)
	f.Close()
	if len(recs) != 2 || string(recs[0].Key) != "S1/A" || !strings.Contains(string(recs[0].Value), `"x":1`) ||
		recs[1].Key != nil || string(recs[1].Value) != "not json" {
		t.Errorf("jsonl records %q", recs)
	}

	for name, content := range map[string]string{"bad.csv": "event_id,store,sku,qty\n", "x.txt": ""} {
		if _, err := source.OpenFile(write(t, dir, name, content)); !errors.Is(err, source.ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSyntheticDeterministicAndValid(t *testing.T) {
	cfg := source.SynthConfig{Stores: 2, SKUs: 10, Seed: 3, Days: 14, OutOfOrder: 0.05, Late: 0.01, Duplicate: 0.02, Malformed: 0.01}
	run := func() []source.Record {
		g, err := source.NewSynthetic(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return drain(t, g)
	}
	a, b := run(), run()
	if len(a) != len(b) || len(a) < 500 {
		t.Fatalf("runs gave %d and %d records", len(a), len(b))
	}
	for i := range a {
		if string(a[i].Value) != string(b[i].Value) {
			t.Fatalf("record %d differs between runs with one seed", i)
		}
	}
	d := decoder(t)
	ids := map[string]int{}
	var malformed, promos, valid int
	var last time.Time
	for _, r := range a {
		if r.Time.Before(last) {
			t.Fatalf("arrival times go back: %v after %v", r.Time, last)
		}
		if !r.Time.IsZero() {
			last = r.Time
		}
		var ev pipeline.Event
		if err := d.Decode(r.Key, r.Value, time.Now(), &ev); err != nil {
			malformed++
			continue
		}
		valid++
		ids[string(ev.ID)]++
		if ev.Promo {
			promos++
		}
	}
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	share := func(n int) float64 { return float64(n) / float64(len(a)) }
	if s := share(malformed); s < 0.002 || s > 0.03 {
		t.Errorf("malformed share %.4f, configured 0.01", s)
	}
	if s := share(dups); s < 0.005 || s > 0.05 {
		t.Errorf("duplicate share %.4f, configured 0.02", s)
	}
	if promos == 0 {
		t.Error("no promotions in two weeks")
	}
	if _, err := source.NewSynthetic(source.SynthConfig{Late: 2}); err == nil {
		t.Error("rate above 1 accepted")
	}
}

func BenchmarkSynthetic(b *testing.B) {
	g, _ := source.NewSynthetic(source.SynthConfig{Stores: 10, SKUs: 100})
	b.ReportAllocs()
	for range b.N {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
