package api

import (
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"runtime/debug"
	"time"
)

// RequestIDHeader carries a request's id, in the response always and in
// the request when the client (or a proxy) chose one.
const RequestIDHeader = "X-Request-Id"

// crockford is the ULID alphabet: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newRequestID returns a ULID: 48 bits of milliseconds then 80 random
// bits, 26 characters that sort by time.
func newRequestID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	// 128 bits as 26 five-bit digits, the first holding the top 3 bits.
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// saneRequestID tells whether a client's id can be echoed and logged as
// is: 1 to 128 letters, digits and - _ . : only.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// withRequestID gives every request an id (the client's when sane), sets
// it on the response before the handler runs, so error answers and logs
// can name it, and turns a handler's panic into a logged 500 with that id.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !saneRequestID(id) {
			id = newRequestID(time.Now())
		}
		w.Header().Set(RequestIDHeader, id)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("request panicked", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeJSON(w, http.StatusInternalServerError, internalErrorBody(id))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// internalErrorBody is what a client sees of a server fault: a sentence it
// can act on and the id under which the server logged the real error.
func internalErrorBody(id string) map[string]string {
	return map[string]string{
		"error":      "internal error; the server logged it with request id " + id + " (quote it when reporting the problem; retrying may succeed)",
		"request_id": id,
	}
}
