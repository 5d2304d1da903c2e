package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// defaultAPIBodyBytes caps /api/* bodies when Limits.MaxAPIBodyBytes is 0.
const defaultAPIBodyBytes = 1 << 20

// apiBodyLimit is the most bytes an /api/* request body may have.
func (s *Server) apiBodyLimit() int64 {
	if n := s.opts.Limits.MaxAPIBodyBytes; n > 0 {
		return int64(n)
	}
	return defaultAPIBodyBytes
}

// tooLarge is the answer to a body over the limit, naming it and the key
// that sets it.
func (s *Server) tooLarge() error {
	return errorf(http.StatusRequestEntityTooLarge, "request body is over the %d-byte limit of /api/* requests (limits.max_api_body_bytes)", s.apiBodyLimit())
}

// decodeBody decodes an /api/* JSON request body strictly: one value of
// the documented fields, at most apiBodyLimit bytes (413 over it).
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, into any) error {
	if r.ContentLength > s.apiBodyLimit() {
		return s.tooLarge()
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.apiBodyLimit()))
	dec.DisallowUnknownFields()
	err := dec.Decode(into)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return s.tooLarge()
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "request body: more than one JSON value")
	}
	return nil
}
