package api

import (
	"net/http"
	"strconv"

	"github.com/cohortdb/cohort/docs"
)

// serveOpenAPI answers GET /openapi.yaml with the embedded document that
// describes these routes (no key needed: it holds no data).
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc := docs.OpenAPI()
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.Write(doc)
}
