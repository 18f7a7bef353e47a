package source

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// Event is a sales event as the input topic carries it.
type Event struct {
	// ID is the unique event id.
	ID string
	// Store and SKU identify the series.
	Store, SKU string
	// Time is the event time.
	Time time.Time
	// Qty is the quantity sold.
	Qty float64
	// Price is the unit price; NaN when unknown.
	Price float64
	// Promo reports a promotion.
	Promo bool
}

// Key returns the record key, "STORE/SKU".
func (e *Event) Key() string { return e.Store + "/" + e.SKU }

// AppendJSON appends the event's JSON value to dst.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = strconv.AppendQuote(dst, e.ID)
	dst = append(dst, `,"store":`...)
	dst = strconv.AppendQuote(dst, e.Store)
	dst = append(dst, `,"sku":`...)
	dst = strconv.AppendQuote(dst, e.SKU)
	dst = append(dst, `,"ts":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","qty":`...)
	dst = strconv.AppendFloat(dst, e.Qty, 'f', -1, 64)
	if !math.IsNaN(e.Price) {
		dst = append(dst, `,"price":`...)
		dst = strconv.AppendFloat(dst, e.Price, 'f', -1, 64)
	}
	if e.Promo {
		dst = append(dst, `,"promo":true`...)
	}
	return append(dst, '}')
}

// Record is one record to produce.
type Record struct {
	// Key and Value are the record's key and payload. They are valid until
	// the next call to Next.
	Key, Value []byte
	// Time is when the record is due, used to pace replays: the event time
	// for files (the zero time for rows without a valid one) and the
	// simulated arrival time for generated records.
	Time time.Time
}

// Source yields records.
type Source interface {
	// Next returns the next record, or io.EOF after the last.
	Next() (Record, error)
}

// ErrFormat is returned, wrapped, for input that cannot be parsed.
var ErrFormat = errors.New("source: bad input")
