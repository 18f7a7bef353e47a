package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/trendstream/trendstream/decision"
)

// CatalogRecord is the value of a record on the catalog topic, keyed by
// series id "STORE/SKU": the series' inventory policy where it differs
// from the defaults. schema/catalog.schema.json describes it. Absent or
// zero fields keep the defaults; an empty value (a tombstone) drops the
// series' entry.
type CatalogRecord struct {
	LeadTime     int     `json:"lead_time"`
	ReviewPeriod int     `json:"review_period"`
	ServiceLevel float64 `json:"service_level"`
	PackSize     float64 `json:"pack_size"`
}

// InventoryRecord is the value of a record on the inventory topic, keyed
// by series id: the series' stock position at an event time.
// schema/inventory.schema.json describes it. A record older than the one
// held for its series is ignored; an empty value drops the series' entry.
type InventoryRecord struct {
	OnHand  *float64  `json:"on_hand"`
	OnOrder float64   `json:"on_order"`
	TS      time.Time `json:"ts"`
}

// maxCatalogBytes bounds a catalog or inventory record's value.
const maxCatalogBytes = 4096

// DecodeCatalog decodes a catalog record and checks its policy, defaults
// applied, against a forecast horizon. A bad record is an *InvalidError
// whose reason and detail go to the dead-letter topic, like a bad sale.
func DecodeCatalog(key, value []byte, horizon int) (decision.Policy, error) {
	var rec CatalogRecord
	if err := decodeSide(key, value, maxCatalogBytes, &rec); err != nil {
		return decision.Policy{}, err
	}
	p := decision.Policy{LeadTime: rec.LeadTime, ReviewPeriod: rec.ReviewPeriod, ServiceLevel: rec.ServiceLevel, PackSize: rec.PackSize}
	if p.LeadTime < 0 || p.ReviewPeriod < 0 || p.ServiceLevel < 0 || p.PackSize < 0 {
		return p, &InvalidError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("negative policy field in %+v", rec)}
	}
	if err := p.WithDefaults().Validate(horizon); err != nil {
		return p, &InvalidError{Reason: ReasonInvalidField, Detail: err.Error()}
	}
	return p, nil
}

// DecodeInventory decodes an inventory record.
func DecodeInventory(key, value []byte) (decision.Stock, time.Time, error) {
	var rec InventoryRecord
	if err := decodeSide(key, value, maxCatalogBytes, &rec); err != nil {
		return decision.Stock{}, time.Time{}, err
	}
	switch {
	case rec.OnHand == nil:
		return decision.Stock{}, time.Time{}, &InvalidError{Reason: ReasonMissingField, Detail: "on_hand is missing"}
	case rec.TS.IsZero():
		return decision.Stock{}, time.Time{}, &InvalidError{Reason: ReasonMissingField, Detail: "ts is missing"}
	case math.IsNaN(*rec.OnHand) || math.IsInf(*rec.OnHand, 0) || math.Abs(*rec.OnHand) > 1e12:
		return decision.Stock{}, time.Time{}, &InvalidError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("on_hand %v", *rec.OnHand)}
	case !(rec.OnOrder >= 0 && rec.OnOrder <= 1e12):
		return decision.Stock{}, time.Time{}, &InvalidError{Reason: ReasonInvalidField, Detail: fmt.Sprintf("on_order %v is not in [0, 1e12]", rec.OnOrder)}
	}
	return decision.Stock{OnHand: *rec.OnHand, OnOrder: rec.OnOrder}, rec.TS, nil
}

// decodeSide checks a catalog or inventory record's key and decodes its
// JSON value strictly into v.
func decodeSide(key, value []byte, limit int, v any) error {
	store, sku, ok := strings.Cut(string(key), "/")
	switch {
	case len(value) > limit:
		return &InvalidError{Reason: ReasonOversized, Detail: fmt.Sprintf("%d bytes, the limit is %d", len(value), limit)}
	case !ok || store == "" || sku == "":
		return &InvalidError{Reason: ReasonKeyMismatch, Detail: fmt.Sprintf("key %q is not STORE/SKU", key)}
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &InvalidError{Reason: ReasonInvalidJSON, Detail: err.Error()}
	}
	if dec.More() {
		return &InvalidError{Reason: ReasonInvalidJSON, Detail: "data after the JSON object"}
	}
	return nil
}

// CatalogTable holds the latest catalog and inventory record of every
// series, as read from the compacted catalog and inventory topics, and
// answers the engines' lookups (it implements Catalog).
//
// The table is not part of a partition's exactly-once state: it is a
// view of two compacted topics that every instance reads whole at
// start-up and then follows, so a close replayed after a crash plans with
// the table as it is then, which may differ from what the first attempt
// saw. Plans are keyed by series and compacted, so the later one wins.
//
// A CatalogTable is safe for concurrent use: the drivers following the
// topics write it, the partitions' engines read it.
type CatalogTable struct {
	horizon int

	mu       sync.RWMutex
	policies map[string]decision.Policy
	stock    map[string]stockAt
}

type stockAt struct {
	stock decision.Stock
	at    time.Time
}

// NewCatalogTable returns an empty table for forecasts of the given
// horizon, against which catalog policies are checked.
func NewCatalogTable(horizon int) *CatalogTable {
	return &CatalogTable{horizon: horizon, policies: map[string]decision.Policy{}, stock: map[string]stockAt{}}
}

// ApplyCatalog applies a catalog record: an empty value deletes the
// series' entry. A bad record changes nothing and is an *InvalidError.
func (t *CatalogTable) ApplyCatalog(key, value []byte) error {
	if len(value) == 0 {
		t.mu.Lock()
		delete(t.policies, string(key))
		t.mu.Unlock()
		return nil
	}
	p, err := DecodeCatalog(key, value, t.horizon)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.policies[string(key)] = p
	t.mu.Unlock()
	return nil
}

// ApplyInventory applies an inventory record: an empty value deletes the
// series' entry, and a record older than the entry held is ignored. A bad
// record changes nothing and is an *InvalidError.
func (t *CatalogTable) ApplyInventory(key, value []byte) error {
	if len(value) == 0 {
		t.mu.Lock()
		delete(t.stock, string(key))
		t.mu.Unlock()
		return nil
	}
	st, at, err := DecodeInventory(key, value)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if old, ok := t.stock[string(key)]; !ok || !at.Before(old.at) {
		t.stock[string(key)] = stockAt{stock: st, at: at}
	}
	t.mu.Unlock()
	return nil
}

// Lookup implements Catalog.
func (t *CatalogTable) Lookup(series string) (decision.Policy, decision.Stock, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.stock[series]
	return t.policies[series], s.stock, ok
}

// Len returns the number of series with a policy and with a stock
// position.
func (t *CatalogTable) Len() (policies, stock int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.policies), len(t.stock)
}
