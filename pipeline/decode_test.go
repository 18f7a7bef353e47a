package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testNow = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

func newTestDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder(DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecodeValid(t *testing.T) {
	d := newTestDecoder(t)
	for _, tc := range []struct {
		name, key, value string
		want             Event
	}{
		{
			name:  "all fields",
			key:   "TX_3/FOODS_3_001",
			value: `{"event_id":"e-1","store":"TX_3","sku":"FOODS_3_001","ts":"2024-05-02T12:30:00Z","qty":3,"price":2.49,"promo":true}`,
			want: Event{ID: []byte("e-1"), Store: []byte("TX_3"), SKU: []byte("FOODS_3_001"),
				Time: time.Date(2024, 5, 2, 12, 30, 0, 0, time.UTC), Qty: 3, Price: 2.49, Promo: true},
		},
		{
			name:  "optional fields absent or null, whitespace, unknown fields, offset and fraction",
			key:   "s1/a",
			value: " {\n \"qty\" : 1.5e1 , \"extra\": {\"x\": [1, \"y\\n\", null, {}]}, \"price\": null, \"promo\": null,\n \"ts\": \"2024-05-02T14:30:00.25+02:00\", \"sku\": \"a\", \"store\": \"s1\", \"event_id\": \"x\"}\t",
			want: Event{ID: []byte("x"), Store: []byte("s1"), SKU: []byte("a"),
				Time: time.Date(2024, 5, 2, 12, 30, 0, 250e6, time.UTC), Qty: 15, Price: math.NaN()},
		},
		{
			name:  "escaped strings",
			key:   "caf\u00e9/sku \"1\"",
			value: `{"event_id":"\u00e9\ud83d\ude00","store":"caf\u00e9","sku":"sku \"1\"","ts":"2024-05-02T00:00:00-05:30","qty":0}`,
			want: Event{ID: []byte("é😀"), Store: []byte("café"), SKU: []byte(`sku "1"`),
				Time: time.Date(2024, 5, 2, 5, 30, 0, 0, time.UTC), Qty: 0, Price: math.NaN()},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			if err := d.Decode([]byte(tc.key), []byte(tc.value), testNow, &ev); err != nil {
				t.Fatal(err)
			}
			if !eventsEqual(&ev, &tc.want) {
				t.Errorf("got  %s\nwant %s", fmtEvent(&ev), fmtEvent(&tc.want))
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	d := newTestDecoder(t)
	ok := func(mod func(m map[string]any)) string {
		m := map[string]any{"event_id": "e", "store": "s", "sku": "k", "ts": "2024-05-02T12:00:00Z", "qty": 1}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name, key, value string
		want             Reason
	}{
		{"not json", "s/k", `not json`, ReasonInvalidJSON},
		{"array", "s/k", `[1]`, ReasonInvalidJSON},
		{"truncated", "s/k", `{"event_id":"e","store":"s"`, ReasonInvalidJSON},
		{"trailing data", "s/k", ok(func(map[string]any) {}) + "x", ReasonInvalidJSON},
		{"raw control char", "s/k", "{\"event_id\":\"a\tb\"}", ReasonInvalidJSON},
		{"bad escape", "s/k", `{"event_id":"\x"}`, ReasonInvalidJSON},
		{"bad number", "s/k", `{"qty":01}`, ReasonInvalidJSON},
		{"empty object", "s/k", `{}`, ReasonMissingField},
		{"missing qty", "s/k", ok(func(m map[string]any) { delete(m, "qty") }), ReasonMissingField},
		{"empty sku", "s/", ok(func(m map[string]any) { m["sku"] = "" }), ReasonMissingField},
		{"null ts", "s/k", ok(func(m map[string]any) { m["ts"] = nil }), ReasonMissingField},
		{"qty as string", "s/k", ok(func(m map[string]any) { m["qty"] = "3" }), ReasonInvalidField},
		{"store as number", "s/k", ok(func(m map[string]any) { m["store"] = 3 }), ReasonInvalidField},
		{"promo as string", "s/k", ok(func(m map[string]any) { m["promo"] = "yes" }), ReasonInvalidField},
		{"negative price", "s/k", ok(func(m map[string]any) { m["price"] = -1 }), ReasonInvalidField},
		{"slash in store", "a/b/k", ok(func(m map[string]any) { m["store"] = "a/b" }), ReasonInvalidField},
		{"ts without zone", "s/k", ok(func(m map[string]any) { m["ts"] = "2024-05-02T12:00:00" }), ReasonInvalidField},
		{"ts bad date", "s/k", ok(func(m map[string]any) { m["ts"] = "2023-02-29T12:00:00Z" }), ReasonInvalidField},
		{"ts year 1800", "s/k", ok(func(m map[string]any) { m["ts"] = "1800-02-20T12:00:00Z" }), ReasonInvalidField},
		{"long id", "s/k", ok(func(m map[string]any) { m["event_id"] = strings.Repeat("x", 300) }), ReasonInvalidField},
		{"key mismatch", "s/other", ok(func(map[string]any) {}), ReasonKeyMismatch},
		{"missing key", "", ok(func(map[string]any) {}), ReasonKeyMismatch},
		{"negative qty", "s/k", ok(func(m map[string]any) { m["qty"] = -2 }), ReasonQtyRange},
		{"huge qty", "s/k", ok(func(m map[string]any) { m["qty"] = 1e7 }), ReasonQtyRange},
		{"overflowing qty", "s/k", `{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":1e999}`, ReasonQtyRange},
		{"future", "s/k", ok(func(m map[string]any) { m["ts"] = "2024-06-02T00:00:01Z" }), ReasonFuture},
		{"too old", "s/k", ok(func(m map[string]any) { m["ts"] = "2024-05-01T23:59:59Z" }), ReasonTooOld},
		{"epoch", "s/k", ok(func(m map[string]any) { m["ts"] = "1970-01-01T00:00:00Z" }), ReasonTooOld},
		{"oversized", "s/k", ok(func(m map[string]any) { m["pad"] = strings.Repeat(" ", 5000) }), ReasonOversized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tc.key), []byte(tc.value), testNow, &ev)
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Reason != tc.want {
				t.Fatalf("Decode(%s) = %v, want reason %s", tc.value, err, tc.want)
			}
			if inv.Detail == "" {
				t.Error("no detail")
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Limits)
	}{
		{"empty quantity range", func(l *Limits) { l.MinQty, l.MaxQty = 5, 1 }},
		{"tiny MaxBytes", func(l *Limits) { l.MaxBytes = 10 }},
		{"zero MaxIDBytes", func(l *Limits) { l.MaxIDBytes = 0 }},
		{"NaN quantity bound", func(l *Limits) { l.MaxQty = math.NaN() }},
	} {
		l := DefaultLimits()
		tc.edit(&l)
		if _, err := NewDecoder(l); err == nil {
			t.Errorf("%s accepted", tc.name)
		}
	}
	l := DefaultLimits()
	l.MinQty, l.MaxFuture, l.MaxPast = -10, -1, -1
	d, err := NewDecoder(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []string{"2199-01-01T00:00:00Z", "1900-01-01T00:00:00Z"} {
		v := `{"event_id":"e","store":"s","sku":"k","ts":"` + ts + `","qty":-3}`
		var ev Event
		if err := d.Decode([]byte("s/k"), []byte(v), testNow, &ev); err != nil || ev.Qty != -3 {
			t.Errorf("returns and events far from the clock with checks relaxed: %v", err)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	d := newTestDecoder(t)
	key := []byte("TX_3/FOODS_3_001")
	value := []byte(`{"event_id":"7f9c0e4e-2d7b-4a55-9c1a-3b0f3c2e9a11","store":"TX_3","sku":"FOODS_3_001","ts":"2024-05-02T12:30:00Z","qty":3,"price":2.49,"promo":false}`)
	var ev Event
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Decode(key, value, testNow, &ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times per event", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	d, _ := NewDecoder(DefaultLimits())
	key := []byte("TX_3/FOODS_3_001")
	value := []byte(`{"event_id":"7f9c0e4e-2d7b-4a55-9c1a-3b0f3c2e9a11","store":"TX_3","sku":"FOODS_3_001","ts":"2024-05-02T12:30:00Z","qty":3,"price":2.49,"promo":false}`)
	var ev Event
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for range b.N {
		if err := d.Decode(key, value, testNow, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func eventsEqual(a, b *Event) bool {
	samePrice := a.Price == b.Price || (math.IsNaN(a.Price) && math.IsNaN(b.Price))
	return bytes.Equal(a.ID, b.ID) && bytes.Equal(a.Store, b.Store) && bytes.Equal(a.SKU, b.SKU) &&
		a.Time.Equal(b.Time) && a.Qty == b.Qty && samePrice && a.Promo == b.Promo
}

func fmtEvent(e *Event) string {
	b, _ := json.Marshal(map[string]any{"id": string(e.ID), "store": string(e.Store), "sku": string(e.SKU),
		"ts": e.Time.Format(time.RFC3339Nano), "qty": e.Qty, "price": math.Float64bits(e.Price), "promo": e.Promo})
	return string(b)
}

// referenceDecode is a slow, obviously correct decoder built on
// encoding/json and time.Parse, for differential fuzzing. It reports only
// whether the event is accepted and what it decodes to.
func referenceDecode(key, value []byte, limits Limits) (Event, bool) {
	var ev Event
	if len(value) > limits.MaxBytes || !json.Valid(value) {
		return ev, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(value, &m) != nil {
		return ev, false
	}
	ident := func(name string, dst *[]byte, slash bool) bool {
		raw, ok := m[name]
		var s string
		// encoding/json replaces invalid UTF-8 with U+FFFD; the event
		// decoder rejects it, so check the raw literal first.
		if !ok || !utf8.Valid(raw) || json.Unmarshal(raw, &s) != nil || s == "" || len(s) > limits.MaxIDBytes {
			return false
		}
		for _, c := range []byte(s) {
			if c < 0x20 || c == 0x7f || (slash && c == '/') {
				return false
			}
		}
		*dst = []byte(s)
		return true
	}
	if !ident("event_id", &ev.ID, false) || !ident("store", &ev.Store, true) || !ident("sku", &ev.SKU, true) {
		return ev, false
	}
	var ts string
	if json.Unmarshal(m["ts"], &ts) != nil {
		return ev, false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || t.Year() < 1900 || t.Year() > 2199 || strings.ContainsAny(ts, " ") {
		return ev, false
	}
	if _, off := t.Zone(); off%60 != 0 || t.UTC().Year() < 1899 {
		return ev, false
	}
	ev.Time = t.UTC()
	qty, ok := m["qty"]
	if !ok || len(qty) == 0 || !(qty[0] == '-' || (qty[0] >= '0' && qty[0] <= '9')) {
		return ev, false
	}
	if json.Unmarshal(qty, &ev.Qty) != nil {
		return ev, false
	}
	ev.Price = math.NaN()
	if raw, ok := m["price"]; ok && string(raw) != "null" {
		if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return ev, false
		}
		if json.Unmarshal(raw, &ev.Price) != nil || ev.Price < 0 {
			return ev, false
		}
	}
	if raw, ok := m["promo"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &ev.Promo) != nil {
			return ev, false
		}
	}
	if string(key) != string(ev.Store)+"/"+string(ev.SKU) || ev.Qty < limits.MinQty || ev.Qty > limits.MaxQty {
		return ev, false
	}
	return ev, true
}

// FuzzDecode checks the fast decoder against referenceDecode: the same
// records are accepted, with the same values, and nothing panics.
func FuzzDecode(f *testing.F) {
	for _, v := range []string{
		`{"event_id":"e-1","store":"TX_3","sku":"FOODS_3_001","ts":"2024-05-02T12:30:00Z","qty":3,"price":2.49,"promo":true}`,
		`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:30:00.123456789+05:30","qty":0.5,"price":null,"promo":false,"x":[{"a":"\u00e9"}]}`,
		`{"event_id":"\ud83d\ude00","store":"s","sku":"k","ts":"2020-02-29T23:59:59-00:00","qty":1e2}`,
		`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:30:00,5Z","qty":-0}`,
		`{"event_id":"\ud800","store":"s","sku":"k","ts":"2024-05-02T12:30:00Z","qty":1}`,
		`{"qty":1,"qty":"x"}`,
		`{"event_id":"e","store":"s","sku":"k","ts":"2024-13-02T12:30:00Z","qty":1}`,
		`[]`, `{}`, `null`, `{"a":`, "",
	} {
		f.Add([]byte("s/k"), []byte(v))
		f.Add([]byte("TX_3/FOODS_3_001"), []byte(v))
	}
	limits := DefaultLimits()
	limits.MaxFuture, limits.MaxPast = -1, -1
	d, _ := NewDecoder(limits)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		var ev Event
		err := d.Decode(key, value, testNow, &ev)
		var inv *InvalidError
		if err != nil && !errors.As(err, &inv) {
			t.Fatalf("Decode returned %T %v, want *InvalidError", err, err)
		}
		want, ok := referenceDecode(key, value, limits)
		if ok != (err == nil) {
			t.Fatalf("Decode(%q, %q) = %v, reference accepts: %v", key, value, err, ok)
		}
		if ok && !eventsEqual(&ev, &want) {
			t.Fatalf("Decode(%q, %q):\n got  %s\nwant %s", key, value, fmtEvent(&ev), fmtEvent(&want))
		}
	})
}
