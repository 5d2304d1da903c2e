// Package docs is Cohort's user documentation. It is a Go package only so
// that the server can embed the OpenAPI document and serve it at
// GET /openapi.yaml; the Markdown files are read on GitHub or on disk.
package docs

import _ "embed"

//go:embed openapi.yaml
var openapi []byte

// OpenAPI returns the HTTP API's OpenAPI document (YAML). The slice is
// shared: callers must not change it.
func OpenAPI() []byte { return openapi }
