package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trendstream/trendstream/internal/schematest"
)

// TestEventSchemaMatchesDecoder checks that schema/sales-event.schema.json
// and the decoder accept and reject the same payloads.
func TestEventSchemaMatchesDecoder(t *testing.T) {
	d := newTestDecoder(t)
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3}`, true},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00.5+02:00","qty":0.5,"price":1.2,"promo":true,"extra":[1]}`, true},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3,"price":null,"promo":null}`, true},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z"}`, false},
		{`{"event_id":"","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3}`, false},
		{`{"event_id":"e","store":"s/t","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02 12:00:00","qty":3}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":-1}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":2000000}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":"3"}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3,"price":-2}`, false},
		{`{"event_id":"e","store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3,"promo":"yes"}`, false},
		{`{"event_id":7,"store":"s","sku":"k","ts":"2024-05-02T12:00:00Z","qty":3}`, false},
		{`[]`, false},
	} {
		var ev Event
		key := []byte("s/k")
		decErr := d.Decode(key, []byte(tc.value), testNow, &ev)
		schemaErr := schematest.Validate(t, "sales-event", []byte(tc.value))
		if (decErr == nil) != tc.ok || (schemaErr == nil) != tc.ok {
			t.Errorf("%s: decoder %v, schema %v; want ok=%v", tc.value, decErr, schemaErr, tc.ok)
		}
	}
}

// TestDeadLetterSchemaReasons checks that schema/dead-letter.schema.json
// lists every dead-letter reason, and no other.
func TestDeadLetterSchemaReasons(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "schema", "dead-letter.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties struct {
			Reason struct {
				Enum []Reason `json:"enum"`
			} `json:"reason"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Properties.Reason.Enum; !slices.Equal(got, Reasons) {
		t.Errorf("the schema's reasons %v, want %v", got, Reasons)
	}
}
