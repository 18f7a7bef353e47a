// Package schematest checks documents against the repository's JSON
// Schemas (schema/*.schema.json) in tests.
package schematest
