package pipeline

import (
	"errors"
	"testing"

	"github.com/trendstream/trendstream/internal/schematest"

	"github.com/trendstream/trendstream/decision"
)

func TestCatalogTable(t *testing.T) {
	tab := NewCatalogTable(28)
	steps := []struct {
		name       string
		inventory  bool
		key, value string
		reason     Reason // "" for a good record
		policy     decision.Policy
		stock      *decision.Stock // after the step
	}{
		{name: "policy", key: "S/K", value: `{"lead_time":3,"pack_size":6}`, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "unknown field", key: "S/K", value: `{"lead":3}`, reason: ReasonInvalidJSON, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "not JSON", key: "S/K", value: `{`, reason: ReasonInvalidJSON, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "key", key: "SK", value: `{}`, reason: ReasonKeyMismatch, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "cycle past the horizon", key: "S/K", value: `{"lead_time":21,"review_period":8}`, reason: ReasonInvalidField, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "service level", key: "S/K", value: `{"service_level":1}`, reason: ReasonInvalidField, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "negative", key: "S/K", value: `{"pack_size":-1}`, reason: ReasonInvalidField, policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "stock", inventory: true, key: "S/K", value: `{"on_hand":4,"on_order":2,"ts":"2024-05-02T00:00:00Z"}`,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: 4, OnOrder: 2}},
		{name: "older stock is ignored", inventory: true, key: "S/K", value: `{"on_hand":9,"ts":"2024-05-01T00:00:00Z"}`,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: 4, OnOrder: 2}},
		{name: "backorder", inventory: true, key: "S/K", value: `{"on_hand":-3,"ts":"2024-05-03T00:00:00Z"}`,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: -3}},
		{name: "no on_hand", inventory: true, key: "S/K", value: `{"ts":"2024-05-04T00:00:00Z"}`, reason: ReasonMissingField,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: -3}},
		{name: "no ts", inventory: true, key: "S/K", value: `{"on_hand":1}`, reason: ReasonMissingField,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: -3}},
		{name: "negative on order", inventory: true, key: "S/K", value: `{"on_hand":1,"on_order":-1,"ts":"2024-05-04T00:00:00Z"}`, reason: ReasonInvalidField,
			policy: decision.Policy{LeadTime: 3, PackSize: 6}, stock: &decision.Stock{OnHand: -3}},
		{name: "stock tombstone", inventory: true, key: "S/K", policy: decision.Policy{LeadTime: 3, PackSize: 6}},
		{name: "policy tombstone", key: "S/K"},
	}
	for _, st := range steps {
		apply := tab.ApplyCatalog
		if st.inventory {
			apply = tab.ApplyInventory
		}
		var value []byte
		if st.value != "" {
			value = []byte(st.value)
		}
		err := apply([]byte(st.key), value)
		var inv *InvalidError
		switch {
		case st.reason == "" && err != nil:
			t.Errorf("%s: %v", st.name, err)
		case st.reason != "" && (!errors.As(err, &inv) || inv.Reason != st.reason):
			t.Errorf("%s: error %v, want reason %s", st.name, err, st.reason)
		}
		p, stock, known := tab.Lookup("S/K")
		if p != st.policy || known != (st.stock != nil) || known && stock != *st.stock {
			t.Errorf("%s: lookup %+v %+v %v, want %+v %+v", st.name, p, stock, known, st.policy, st.stock)
		}
	}
}

// TestCatalogSchemasMatchDecoders checks that schema/catalog.schema.json
// and schema/inventory.schema.json accept and reject what the decoders do.
func TestCatalogSchemasMatchDecoders(t *testing.T) {
	for _, tc := range []struct {
		schema, value string
		ok            bool
	}{
		{"catalog", `{}`, true},
		{"catalog", `{"lead_time":3,"review_period":4,"service_level":0.9,"pack_size":6}`, true},
		{"catalog", `{"lead_time":-1}`, false},
		{"catalog", `{"lead_time":1.5}`, false},
		{"catalog", `{"service_level":1}`, false},
		{"catalog", `{"pack":6}`, false},
		{"catalog", `[]`, false},
		{"inventory", `{"on_hand":3,"ts":"2024-05-01T00:00:00Z"}`, true},
		{"inventory", `{"on_hand":-3,"on_order":5,"ts":"2024-05-01T00:00:00+02:00"}`, true},
		{"inventory", `{"on_hand":3}`, false},
		{"inventory", `{"ts":"2024-05-01T00:00:00Z"}`, false},
		{"inventory", `{"on_hand":3,"on_order":-1,"ts":"2024-05-01T00:00:00Z"}`, false},
		{"inventory", `{"on_hand":"3","ts":"2024-05-01T00:00:00Z"}`, false},
		{"inventory", `{"on_hand":3,"ts":"2024-05-01T00:00:00Z","x":1}`, false},
	} {
		var decErr error
		if tc.schema == "catalog" {
			_, decErr = DecodeCatalog([]byte("s/k"), []byte(tc.value), 28)
		} else {
			_, _, decErr = DecodeInventory([]byte("s/k"), []byte(tc.value))
		}
		schemaErr := schematest.Validate(t, tc.schema, []byte(tc.value))
		if (decErr == nil) != tc.ok || (schemaErr == nil) != tc.ok {
			t.Errorf("%s %s: decoder %v, schema %v; want ok=%v", tc.schema, tc.value, decErr, schemaErr, tc.ok)
		}
	}
}
