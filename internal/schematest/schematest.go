package schematest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles every schema of the repository once.
var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "schema")
	paths, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, os.ErrNotExist
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := make(map[string]*jsonschema.Schema)
	for _, p := range paths {
		s, err := c.Compile(p)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(filepath.Base(p), ".schema.json")] = s
	}
	return out, nil
})

// Validate checks doc against the schema named schema ("forecast" for
// schema/forecast.schema.json); a missing schema fails the test.
func Validate(t testing.TB, schema string, doc []byte) error {
	t.Helper()
	all, err := schemas()
	if err != nil {
		t.Fatalf("compiling schemas: %v", err)
	}
	s, ok := all[schema]
	if !ok {
		t.Fatalf("no schema %q", schema)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return s.Validate(v)
}
