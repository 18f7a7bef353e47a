package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Event is a decoded sales event. Its byte-slice fields point into the
// decoder's scratch or the message; they are valid until the next Decode.
type Event struct {
	// ID is the event's unique id, used for deduplication.
	ID []byte
	// Store and SKU identify the series, "STORE/SKU".
	Store, SKU []byte
	// Time is the event time.
	Time time.Time
	// Qty is the quantity sold.
	Qty float64
	// Price is the unit price; NaN when absent or null.
	Price float64
	// Promo reports a promotion; false when absent or null.
	Promo bool
}

// Reason is why a record went to the dead-letter topic. It is sent in the
// record's "reason" header and labels the dead-letter metric.
type Reason string

// Dead-letter reasons.
const (
	ReasonOversized    Reason = "oversized"
	ReasonInvalidJSON  Reason = "invalid_json"
	ReasonMissingField Reason = "missing_field"
	ReasonInvalidField Reason = "invalid_field"
	ReasonKeyMismatch  Reason = "key_mismatch"
	ReasonQtyRange     Reason = "qty_out_of_range"
	ReasonFuture       Reason = "future_timestamp"
	ReasonLate         Reason = "late"
)

// Reasons lists every dead-letter reason, for metrics and documentation.
var Reasons = []Reason{ReasonOversized, ReasonInvalidJSON, ReasonMissingField, ReasonInvalidField,
	ReasonKeyMismatch, ReasonQtyRange, ReasonFuture, ReasonLate}

// InvalidError describes a record rejected by validation.
type InvalidError struct {
	// Reason classifies the problem.
	Reason Reason
	// Detail says what exactly was wrong, for the dead-letter header.
	Detail string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("stream: %s: %s", e.Reason, e.Detail) }

// Limits bound the values an event may carry. The zero value of each field
// means its default.
type Limits struct {
	// MaxBytes is the largest accepted payload. The default is 4096.
	MaxBytes int
	// MinQty and MaxQty bound the quantity, inclusive. The defaults are 0
	// and 1,000,000; set MinQty negative to accept returns.
	MinQty, MaxQty float64
	// MaxFuture is how far past the wall clock an event time may be. The
	// default is 24 hours; negative disables the check, for replaying
	// synthetic data that runs ahead of the clock.
	MaxFuture time.Duration
	// MaxIDBytes bounds event_id, store and sku. The default is 256.
	MaxIDBytes int
}

func (l *Limits) setDefaults() error {
	if l.MaxBytes == 0 {
		l.MaxBytes = 4096
	}
	if l.MaxQty == 0 {
		l.MaxQty = 1e6
	}
	if l.MaxFuture == 0 {
		l.MaxFuture = 24 * time.Hour
	}
	if l.MaxIDBytes == 0 {
		l.MaxIDBytes = 256
	}
	switch {
	case l.MaxBytes < 64:
		return fmt.Errorf("stream: MaxBytes %d is below 64", l.MaxBytes)
	case math.IsNaN(l.MinQty) || math.IsNaN(l.MaxQty) || l.MinQty > l.MaxQty:
		return fmt.Errorf("stream: quantity range [%v, %v] is empty", l.MinQty, l.MaxQty)
	case l.MaxIDBytes < 1:
		return fmt.Errorf("stream: MaxIDBytes %d is below 1", l.MaxIDBytes)
	}
	return nil
}

// Decoder decodes and validates sales events without allocating. A Decoder
// is not safe for concurrent use.
type Decoder struct {
	limits Limits
	s      scanner
}

// NewDecoder returns a Decoder enforcing limits.
func NewDecoder(limits Limits) (*Decoder, error) {
	if err := limits.setDefaults(); err != nil {
		return nil, err
	}
	return &Decoder{limits: limits}, nil
}

// Limits returns the decoder's limits with defaults filled in.
func (d *Decoder) Limits() Limits { return d.limits }

var (
	errSyntax = errors.New("syntax")
	errType   = errors.New("type")
)

// Decode parses value as a sales event into ev and validates it against the
// key and the limits, with now as the wall clock. A rejected record gives an
// *InvalidError.
func (d *Decoder) Decode(key, value []byte, now time.Time, ev *Event) error {
	if len(value) > d.limits.MaxBytes {
		return &InvalidError{ReasonOversized, fmt.Sprintf("payload of %d bytes exceeds %d", len(value), d.limits.MaxBytes)}
	}
	if err := d.parse(value, ev); err != nil {
		return err
	}
	if err := d.checkKey(key, ev); err != nil {
		return err
	}
	if !(ev.Qty >= d.limits.MinQty && ev.Qty <= d.limits.MaxQty) {
		return &InvalidError{ReasonQtyRange, fmt.Sprintf("qty %v outside [%v, %v]", ev.Qty, d.limits.MinQty, d.limits.MaxQty)}
	}
	if d.limits.MaxFuture >= 0 && ev.Time.After(now.Add(d.limits.MaxFuture)) {
		return &InvalidError{ReasonFuture, fmt.Sprintf("ts %s is more than %v after %s", ev.Time.Format(time.RFC3339), d.limits.MaxFuture, now.UTC().Format(time.RFC3339))}
	}
	return nil
}

func (d *Decoder) checkKey(key []byte, ev *Event) error {
	if len(key) == len(ev.Store)+1+len(ev.SKU) && bytes.HasPrefix(key, ev.Store) &&
		key[len(ev.Store)] == '/' && bytes.HasSuffix(key, ev.SKU) {
		return nil
	}
	return &InvalidError{ReasonKeyMismatch, fmt.Sprintf("key %q is not store/sku %q/%q", truncate(key), ev.Store, ev.SKU)}
}

// field bits record which fields were seen.
const (
	seenID = 1 << iota
	seenStore
	seenSKU
	seenTS
	seenQty
	seenAll = seenID | seenStore | seenSKU | seenTS | seenQty
)

func (d *Decoder) parse(b []byte, ev *Event) error {
	*ev = Event{Price: math.NaN()}
	s := &d.s
	s.b, s.i, s.scratch = b, 0, s.scratch[:0]
	s.ws()
	if !s.consume('{') {
		return invalidJSON("payload is not a JSON object")
	}
	var seen int
	s.ws()
	if s.consume('}') {
		return d.missing(seen)
	}
	for {
		s.ws()
		mark := len(s.scratch)
		name, err := s.str()
		if err != nil {
			return invalidJSON("bad object key")
		}
		s.ws()
		if !s.consume(':') {
			return invalidJSON("missing ':' after key")
		}
		s.ws()
		if err := d.field(s, name, ev, &seen); err != nil {
			return err
		}
		switch string(name) {
		case "event_id", "store", "sku":
			// Identifiers must stay valid until the next Decode.
		default:
			s.scratch = s.scratch[:mark]
		}
		s.ws()
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			break
		}
		return invalidJSON("missing ',' or '}' in object")
	}
	s.ws()
	if s.i != len(s.b) {
		return invalidJSON("data after the JSON object")
	}
	if seen != seenAll {
		return d.missing(seen)
	}
	return nil
}

func (d *Decoder) field(s *scanner, name []byte, ev *Event, seen *int) error {
	switch string(name) {
	case "event_id":
		return d.idField(s, "event_id", &ev.ID, seen, seenID)
	case "store":
		return d.idField(s, "store", &ev.Store, seen, seenStore)
	case "sku":
		return d.idField(s, "sku", &ev.SKU, seen, seenSKU)
	case "ts":
		v, err := s.str()
		if err != nil {
			return fieldErr("ts", err)
		}
		t, ok := parseRFC3339(v)
		if !ok {
			return &InvalidError{ReasonInvalidField, fmt.Sprintf("ts %q is not an RFC 3339 time between years 1900 and 2200", truncate(v))}
		}
		ev.Time = t
		*seen |= seenTS
	case "qty":
		v, err := s.number()
		if err != nil {
			return fieldErr("qty", err)
		}
		ev.Qty = v
		*seen |= seenQty
	case "price":
		if s.null() {
			return nil
		}
		v, err := s.number()
		if err != nil {
			return fieldErr("price", err)
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			return &InvalidError{ReasonInvalidField, fmt.Sprintf("price %v is negative or not finite", v)}
		}
		ev.Price = v
	case "promo":
		if s.null() {
			ev.Promo = false
			return nil
		}
		v, err := s.boolean()
		if err != nil {
			return fieldErr("promo", err)
		}
		ev.Promo = v
	default:
		if err := s.skip(0); err != nil {
			return invalidJSON("bad value for unknown key")
		}
	}
	return nil
}

// idField reads a required identifier string: non-empty, valid UTF-8
// without control characters or '/', at most MaxIDBytes long.
func (d *Decoder) idField(s *scanner, name string, dst *[]byte, seen *int, bit int) error {
	v, err := s.str()
	if err != nil {
		return fieldErr(name, err)
	}
	switch {
	case len(v) == 0:
		return &InvalidError{ReasonMissingField, name + " is empty"}
	case len(v) > d.limits.MaxIDBytes:
		return &InvalidError{ReasonInvalidField, fmt.Sprintf("%s has %d bytes, more than %d", name, len(v), d.limits.MaxIDBytes)}
	case !validID(v, s.ascii, name != "event_id"):
		return &InvalidError{ReasonInvalidField, fmt.Sprintf("%s %q has control characters, invalid UTF-8 or '/'", name, truncate(v))}
	}
	*dst = v
	*seen |= bit
	return nil
}

func validID(v []byte, ascii, noSlash bool) bool {
	if noSlash && bytes.IndexByte(v, '/') >= 0 {
		return false
	}
	if ascii {
		// No escapes, so no control characters but DEL.
		return bytes.IndexByte(v, 0x7f) < 0
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(v)
}

func (d *Decoder) missing(seen int) error {
	for _, f := range []struct {
		bit  int
		name string
	}{{seenID, "event_id"}, {seenStore, "store"}, {seenSKU, "sku"}, {seenTS, "ts"}, {seenQty, "qty"}} {
		if seen&f.bit == 0 {
			return &InvalidError{ReasonMissingField, "missing " + f.name}
		}
	}
	return nil
}

func invalidJSON(detail string) error { return &InvalidError{ReasonInvalidJSON, detail} }

func fieldErr(name string, err error) error {
	if errors.Is(err, errType) {
		return &InvalidError{ReasonInvalidField, name + " has the wrong type"}
	}
	if errors.Is(err, errNull) {
		return &InvalidError{ReasonMissingField, name + " is null"}
	}
	return invalidJSON("bad value for " + name)
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

var errNull = errors.New("null")

// scanner reads JSON from b, unescaping strings into scratch.
type scanner struct {
	b       []byte
	i       int
	scratch []byte
	ascii   bool // the last string read was plain ASCII without escapes
}

func (s *scanner) ws() {
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

func (s *scanner) null() bool { return s.literal("null") }

// kindErr classifies an unexpected value: a syntax error when it is not
// valid JSON, a type error when it is valid JSON of another type.
func (s *scanner) kindErr() error {
	if s.i >= len(s.b) {
		return errSyntax
	}
	if s.null() {
		return errNull
	}
	if err := s.skip(0); err != nil {
		return errSyntax
	}
	return errType
}

func (s *scanner) boolean() (bool, error) {
	if s.literal("true") {
		return true, nil
	}
	if s.literal("false") {
		return false, nil
	}
	return false, s.kindErr()
}

// str reads a JSON string. Without escapes it returns a slice of the input;
// with escapes it unescapes onto s.scratch and returns that part of it.
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, s.kindErr()
	}
	start := s.i + 1
	j := start
	// Skip eight plain ASCII bytes at a time, then look at bytes one by
	// one from the first word holding anything special.
	for ; j+8 <= len(s.b); j += 8 {
		if special(binary.LittleEndian.Uint64(s.b[j:])) {
			break
		}
	}
	s.ascii = true
	for ; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], nil
		case c == '\\':
			s.ascii = false
			return s.unescape(start)
		case c < 0x20:
			return nil, errSyntax
		case c >= 0x80:
			s.ascii = false
		}
	}
	return nil, errSyntax
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any byte of w is a quote, a backslash, a control
// character or not ASCII.
func special(w uint64) bool {
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs|(w-lsb*0x20)&^w|w)&msb != 0
}

func (s *scanner) unescape(start int) ([]byte, error) {
	out := len(s.scratch)
	buf := s.scratch
	for j := start; j < len(s.b); {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			s.scratch = buf
			return buf[out:], nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return nil, errSyntax
		}
		e := s.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, n := hex4(s.b[j:])
			if n == 0 {
				return nil, errSyntax
			}
			j += n
			if r >= 0xD800 && r < 0xDC00 {
				// A high surrogate pairs with a following \uDC00-\uDFFF.
				if r2, n2 := hex4(s.b[min(j+2, len(s.b)):]); j+1 < len(s.b) && s.b[j] == '\\' && s.b[j+1] == 'u' &&
					n2 > 0 && r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					j += 2 + n2
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// numberEnd returns the end of a JSON number starting at s.i, or -1.
func (s *scanner) numberEnd() int {
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	switch {
	case j < len(s.b) && s.b[j] == '0':
		j++
	case j < len(s.b) && s.b[j] >= '1' && s.b[j] <= '9':
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
	default:
		return -1
	}
	if j < len(s.b) && s.b[j] == '.' {
		j++
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		if j == k {
			return -1
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		if j == k {
			return -1
		}
	}
	return j
}

// number reads a JSON number. Numbers too large for a float64 become ±Inf,
// which validation rejects.
func (s *scanner) number() (float64, error) {
	end := s.numberEnd()
	if end < 0 {
		return 0, s.kindErr()
	}
	lit := s.b[s.i:end]
	s.i = end
	if v, ok := smallInt(lit); ok {
		return v, nil
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errSyntax
	}
	return v, nil
}

// smallInt parses short unsigned integer literals, the common case for
// quantities, without strconv.
func smallInt(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return float64(v), true
}

// skip skips any JSON value.
func (s *scanner) skip(depth int) error {
	if depth > 10000 {
		return errSyntax
	}
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch c := s.b[s.i]; {
	case c == '"':
		mark := len(s.scratch)
		_, err := s.str()
		s.scratch = s.scratch[:mark]
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.i++
		s.ws()
		if s.consume(closer) {
			return nil
		}
		for {
			s.ws()
			if c == '{' {
				mark := len(s.scratch)
				_, err := s.str()
				s.scratch = s.scratch[:mark]
				if err != nil {
					return errSyntax
				}
				s.ws()
				if !s.consume(':') {
					return errSyntax
				}
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.consume(',') {
				continue
			}
			if s.consume(closer) {
				return nil
			}
			return errSyntax
		}
	case c == 't':
		if s.literal("true") {
			return nil
		}
	case c == 'f':
		if s.literal("false") {
			return nil
		}
	case c == 'n':
		if s.null() {
			return nil
		}
	default:
		if end := s.numberEnd(); end > 0 {
			s.i = end
			return nil
		}
	}
	return errSyntax
}

// parseRFC3339 parses an RFC 3339 timestamp with optional fractional
// seconds and a Z or ±hh:mm offset, for years 1900 through 2199. It accepts
// what time.Parse accepts for time.RFC3339Nano, including a comma before
// the fraction.
func parseRFC3339(b []byte) (time.Time, bool) {
	if len(b) < 20 {
		return time.Time{}, false
	}
	num := func(p, n int) (int, bool) {
		v := 0
		for _, c := range b[p : p+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || b[4] != '-' || b[7] != '-' ||
		b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	if year < 1900 || year > 2199 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if b[i] == '.' || b[i] == ',' {
		i++
		start := i
		scale := 100000000
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec += int(b[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z':
		i++
	case '+', '-':
		if len(b) != i+6 || b[i+3] != ':' {
			return time.Time{}, false
		}
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
