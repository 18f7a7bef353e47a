package stream

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles the repository's JSON Schemas once.
var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := make(map[string]*jsonschema.Schema)
	for _, name := range []string{"sales-event", "forecast"} {
		s, err := c.Compile(filepath.Join("..", "schema", name+".schema.json"))
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
})

// validate checks doc against one of the repository's schemas.
func validate(t testing.TB, schema string, doc []byte) error {
	t.Helper()
	all, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return all[schema].Validate(v)
}

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
		schemaErr := validate(t, "sales-event", []byte(tc.value))
		if (decErr == nil) != tc.ok || (schemaErr == nil) != tc.ok {
			t.Errorf("%s: decoder %v, schema %v; want ok=%v", tc.value, decErr, schemaErr, tc.ok)
		}
	}
}
