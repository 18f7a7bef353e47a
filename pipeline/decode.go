package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
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
	ReasonTooOld       Reason = "too_old"
	ReasonLate         Reason = "late"
)

// Reasons lists every dead-letter reason, for metrics and documentation.
var Reasons = []Reason{ReasonOversized, ReasonInvalidJSON, ReasonMissingField, ReasonInvalidField,
	ReasonKeyMismatch, ReasonQtyRange, ReasonFuture, ReasonTooOld, ReasonLate}

// InvalidError describes a record rejected by validation.
type InvalidError struct {
	// Reason classifies the problem.
	Reason Reason
	// Detail says what exactly was wrong, for the dead-letter header.
	Detail string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("pipeline: %s: %s", e.Reason, e.Detail) }

// Limits bound the values an event may carry. DefaultLimits gives the
// defaults.
type Limits struct {
	// MaxBytes is the largest accepted payload, at least 64.
	MaxBytes int
	// MinQty and MaxQty bound the quantity, inclusive; a negative MinQty
	// accepts returns.
	MinQty, MaxQty float64
	// MaxFuture is how far past the wall clock an event time may be;
	// negative disables the check, for replays of synthetic data that runs
	// ahead of the clock.
	MaxFuture time.Duration
	// MaxPast is how far before the wall clock an event time may be, so
	// that a stray timestamp (1970) cannot drag the watermark of a new
	// partition back by decades; negative disables the check, for replays
	// of history.
	MaxPast time.Duration
	// MaxIDBytes bounds event_id, store and sku, at least 1.
	MaxIDBytes int
}

// DefaultLimits returns payloads of at most 4096 bytes, quantities in
// [0, 1,000,000], event times from 30 days before to 24 hours after the
// wall clock (30 days outlast Kafka's default retention of 7, so a
// partition rebuilt from its topic accepts what the topic retains) and ids
// of at most 256 bytes.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 4096, MaxQty: 1e6, MaxFuture: 24 * time.Hour, MaxPast: 30 * 24 * time.Hour, MaxIDBytes: 256}
}

func (l *Limits) validate() error {
	switch {
	case l.MaxBytes < 64:
		return fmt.Errorf("pipeline: Limits.MaxBytes %d is below 64", l.MaxBytes)
	case math.IsNaN(l.MinQty) || math.IsNaN(l.MaxQty) || l.MinQty > l.MaxQty:
		return fmt.Errorf("pipeline: quantity range [%v, %v] is empty", l.MinQty, l.MaxQty)
	case l.MaxIDBytes < 1:
		return fmt.Errorf("pipeline: Limits.MaxIDBytes %d is below 1", l.MaxIDBytes)
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
	if err := limits.validate(); err != nil {
		return nil, err
	}
	return &Decoder{limits: limits}, nil
}

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
	if d.limits.MaxPast >= 0 && ev.Time.Before(now.Add(-d.limits.MaxPast)) {
		return &InvalidError{ReasonTooOld, fmt.Sprintf("ts %s is more than %v before %s", ev.Time.Format(time.RFC3339), d.limits.MaxPast, now.UTC().Format(time.RFC3339))}
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
