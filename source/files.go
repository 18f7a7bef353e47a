package source

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File is a Source reading events from a CSV or JSON-lines file. Records
// keep the file's order. Rows are not validated here: a row the processor
// would reject still becomes a record, so it reaches the dead-letter topic
// like any bad event.
type File struct {
	f    *os.File
	next func() (Record, error)
}

// OpenFile opens a .csv or .jsonl (also .ndjson, .json) events file.
//
// A CSV file has a header naming at least event_id, store, sku, ts and qty,
// optionally price and promo (true/false, 1/0 or empty). A JSON-lines file
// holds one event value per line, passed through unchanged; its key is
// taken from the store and sku fields.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s := &File{f: f}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv":
		err = s.initCSV(path)
	case ".jsonl", ".ndjson", ".json":
		s.initJSONL()
	default:
		err = fmt.Errorf("%w: %s: unknown extension %q (want .csv or .jsonl)", ErrFormat, path, ext)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// Next implements Source.
func (s *File) Next() (Record, error) { return s.next() }

// Close closes the file.
func (s *File) Close() error { return s.f.Close() }

func (s *File) initCSV(path string) error {
	r := csv.NewReader(bufio.NewReaderSize(s.f, 1<<20))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("%w: %s: reading header: %v", ErrFormat, path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"event_id", "store", "sku", "ts", "qty"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("%w: %s: header lacks column %q", ErrFormat, path, need)
		}
	}
	field := func(rec []string, name string) (string, bool) {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return "", false
		}
		return rec[i], true
	}
	var key, val []byte
	s.next = func() (Record, error) {
		rec, err := r.Read()
		if err == io.EOF {
			return Record{}, io.EOF
		}
		if err != nil {
			return Record{}, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		store, _ := field(rec, "store")
		sku, _ := field(rec, "sku")
		ts, _ := field(rec, "ts")
		key = append(append(append(key[:0], store...), '/'), sku...)
		val = append(val[:0], `{"event_id":`...)
		id, _ := field(rec, "event_id")
		val = strconv.AppendQuote(val, id)
		val = append(val, `,"store":`...)
		val = strconv.AppendQuote(val, store)
		val = append(val, `,"sku":`...)
		val = strconv.AppendQuote(val, sku)
		val = append(val, `,"ts":`...)
		val = strconv.AppendQuote(val, ts)
		qty, _ := field(rec, "qty")
		val = appendNumber(append(val, `,"qty":`...), qty)
		if price, ok := field(rec, "price"); ok && strings.TrimSpace(price) != "" {
			val = appendNumber(append(val, `,"price":`...), price)
		}
		if promo, ok := field(rec, "promo"); ok {
			val = append(val, `,"promo":`...)
			switch strings.ToLower(strings.TrimSpace(promo)) {
			case "true", "1", "yes":
				val = append(val, "true"...)
			case "false", "0", "no", "":
				val = append(val, "false"...)
			default:
				val = strconv.AppendQuote(val, promo)
			}
		}
		val = append(val, '}')
		t, _ := time.Parse(time.RFC3339Nano, ts)
		return Record{Key: key, Value: val, Time: t}, nil
	}
	return nil
}

// appendNumber appends s as a JSON number when it is one, else as a string
// the processor will reject.
func appendNumber(dst []byte, s string) []byte {
	s = strings.TrimSpace(s)
	if json.Valid([]byte(s)) && s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return append(dst, s...)
	}
	return strconv.AppendQuote(dst, s)
}

func (s *File) initJSONL() {
	sc := bufio.NewScanner(s.f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
	var key []byte
	var fields struct {
		Store, SKU string
		TS         string `json:"ts"`
	}
	s.next = func() (Record, error) {
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			fields.Store, fields.SKU, fields.TS = "", "", ""
			key = key[:0]
			var t time.Time
			if json.Unmarshal(line, &fields) == nil && fields.Store != "" && fields.SKU != "" {
				key = append(append(append(key, fields.Store...), '/'), fields.SKU...)
				t, _ = time.Parse(time.RFC3339Nano, fields.TS)
			}
			return Record{Key: slices.Clip(key), Value: line, Time: t}, nil
		}
		if err := sc.Err(); err != nil {
			return Record{}, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return Record{}, io.EOF
	}
}
