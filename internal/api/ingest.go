package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

// ingestRoute serves POST /v1/{route}: the Segment tracking API.
func (s *Server) ingestRoute(route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.ingest(w, r, route); err != nil {
			s.writeErr(w, r, err)
		}
	}
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, route string) error {
	received := s.opts.Now().UTC()
	lim := message.Limits{
		MaxMessageBytes: s.opts.Limits.MaxMessageBytes,
		MaxBatchBytes:   s.opts.Limits.MaxBatchBytes,
		MaxProperties:   s.opts.Limits.MaxProperties,
		MaxTraits:       s.opts.Limits.MaxTraits,
	}

	// Basic auth (write key as user name) is checked before the body is read.
	var ws *ingest.Workspace
	if user, _, ok := r.BasicAuth(); ok {
		var err error
		if ws, err = s.writeWorkspace(user); err != nil {
			return err
		}
	}

	body, readErr := readBody(r, lim.MaxBatchBytes)
	var req *message.Request
	decodeErr := readErr
	if decodeErr == nil {
		req, decodeErr = message.Decode(route, body, received, lim)
	}
	if ws == nil {
		key := ""
		if req != nil {
			key = req.WriteKey
		}
		if key == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cohort"`)
			if decodeErr != nil {
				return errorf(http.StatusUnauthorized, "no write key: send it as the Basic auth user name (the body could not be read for a writeKey either: %v)", decodeErr)
			}
			return errorf(http.StatusUnauthorized, "no write key: send it as the Basic auth user name or as \"writeKey\" in the body")
		}
		var err error
		if ws, err = s.writeWorkspace(key); err != nil {
			return err
		}
	}
	if decodeErr != nil {
		status := http.StatusBadRequest
		if errors.Is(decodeErr, message.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		if err := s.in.Refuse(r.Context(), ws, "http", body, decodeErr); err != nil {
			return err
		}
		return errorf(status, "%v", decodeErr)
	}
	if lim := s.limiter(ws.Num); lim != nil {
		n := len(req.Items)
		res := lim.ReserveN(received, n)
		if !res.OK() {
			return errorf(http.StatusRequestEntityTooLarge, "a request of %d messages is over the workspace's burst of %d", n, lim.Burst())
		}
		if d := res.DelayFrom(received); d > 0 {
			res.CancelAt(received)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
			return errorf(http.StatusTooManyRequests, "workspace %q is over its rate of %g events/s; retry in %s", ws.Name, s.opts.Limits.EventsPerSecond, d.Round(1e6))
		}
	}
	res, err := s.in.Submit(r.Context(), ws, "http", req.Items)
	if err != nil {
		return err
	}
	answer := map[string]any{"success": len(res.Rejected) == 0}
	if len(res.Rejected) > 0 {
		answer["rejected"] = res.Rejected
	}
	// Messages already stored (a retry, a re-import) are acknowledged and
	// skipped; the answer counts them when there are any, so that an SDK
	// sees Segment's exact {"success": true} otherwise.
	if res.Duplicates > 0 {
		answer["duplicates"] = res.Duplicates
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// writeWorkspace resolves a write key.
func (s *Server) writeWorkspace(key string) (*ingest.Workspace, error) {
	rec, ws, err := s.keyGrant(key)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			ae.Msg = "invalid write key: " + ae.Msg
		}
		return nil, err
	}
	if rec.Role != store.RoleWrite {
		return nil, errorf(http.StatusForbidden, "this key cannot ingest: send data with the workspace's write key")
	}
	return ws, nil
}

// readBody reads the request body, gunzipping it when the client says so
// (by Content-Encoding, whatever the Content-Type: RudderStack labels gzip
// bodies as form data), refusing more than max bytes.
func readBody(r *http.Request, max int) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "gzip", "x-gzip":
		b, err := message.Gunzip(io.LimitReader(r.Body, int64(max)*4+1024), max)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		return b, nil
	case "", "identity":
	default:
		return nil, fmt.Errorf("Content-Encoding %q is not supported (send gzip or nothing): %w", enc, message.ErrMalformed)
	}
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= int64(max) {
		// Read into one buffer of the announced size (and the room
		// ReadFrom wants to see the end) rather than doubling up to it:
		// the doublings were 30% of the bytes an ingest request allocated.
		buf.Grow(int(n) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %v: %w", err, message.ErrMalformed)
	}
	if n > int64(max) {
		return nil, fmt.Errorf("body is over the %d-byte limit: %w", max, message.ErrTooLarge)
	}
	return buf.Bytes(), nil
}
