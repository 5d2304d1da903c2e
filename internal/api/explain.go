package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
)

// segmentHistory answers GET /api/segments/{id}/history: the size at the
// end of each step (1h or 1d) from `from` to `to` (RFC 3339; by default
// the last day by hour, or the last 30 days by day, up to now).
func (s *Server) segmentHistory(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	q := r.URL.Query()
	var step time.Duration
	switch v := q.Get("step"); v {
	case "", "1h":
		step = time.Hour
	case "1d":
		step = 24 * time.Hour
	default:
		return errorf(http.StatusBadRequest, "step=%q: step must be 1h or 1d", v)
	}
	to := s.opts.Now().UTC()
	if v := q.Get("to"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errorf(http.StatusBadRequest, "to=%q is not an RFC 3339 date-time", v)
		}
		to = t
	}
	from := to.Add(-24 * time.Hour)
	if step > time.Hour {
		from = to.AddDate(0, 0, -30)
	}
	if v := q.Get("from"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errorf(http.StatusBadRequest, "from=%q is not an RFC 3339 date-time", v)
		}
		from = t
	}
	pts, err := s.seg.History(ws, r.PathValue("id"), from, to, step)
	if err != nil {
		return paramErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": pts})
	return nil
}

// explainUser answers GET /api/users/{id}/explain?segment=ID.
func (s *Server) explainUser(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	seg := r.URL.Query().Get("segment")
	if seg == "" {
		return errorf(http.StatusBadRequest, "the segment parameter is required: /api/users/{id}/explain?segment=ID")
	}
	x, err := s.seg.Explain(r.Context(), ws, r.PathValue("id"), seg)
	if err != nil {
		return paramErr(err)
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// paramErr maps the segment package's errors about query parameters (no
// body, so no JSON pointer) to API errors.
func paramErr(err error) error {
	var ie *segment.InvalidError
	if errors.As(err, &ie) {
		return errorf(http.StatusBadRequest, "%s: %s", ie.Path, ie.Msg)
	}
	return segmentErr(err)
}
