package api

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// User is the answer of GET /api/users/{id}.
type User struct {
	ID        string         `json:"id"`
	IDs       []string       `json:"ids"`
	Traits    map[string]any `json:"traits"`
	Segments  []string       `json:"segments"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	id := r.PathValue("id")
	db := s.st.DB()
	num, ok, err := store.ResolveID(db, ws.Num, id)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "no user %q", id)
	}
	p, ok, err := store.ReadProfile(db, ws.Num, num)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "no user %q", id)
	}
	writeJSON(w, http.StatusOK, User{ID: p.ID, IDs: p.IDs, Traits: p.Traits, Segments: s.seg.UserSegments(ws, num), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	id := r.PathValue("id")
	found, err := s.in.DeleteUser(r.Context(), ws, id)
	if err != nil {
		return err
	}
	if !found {
		return errorf(http.StatusNotFound, "no user %q", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	writeJSON(w, http.StatusOK, ws.Schema.Snapshot())
	return nil
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(http.StatusBadRequest, "%s=%q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func (s *Server) getSchemaValues(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	q := r.URL.Query()
	limit, err := intParam(r, "limit", 10, 1, 1000)
	if err != nil {
		return err
	}
	trait, event, prop := q.Get("trait"), q.Get("event"), q.Get("property")
	// Both answers come from counts the index keeps current: no stored
	// profile or event is read.
	ix := s.seg.Index(ws)
	switch {
	case trait != "" && event == "":
		writeJSON(w, http.StatusOK, map[string]any{"trait": trait, "values": ix.TopTraitValues(trait, limit)})
	case event != "" && prop != "" && trait == "":
		writeJSON(w, http.StatusOK, map[string]any{"event": event, "property": prop, "values": ix.TopEventValues(event, prop, limit)})
	default:
		return errorf(http.StatusBadRequest, "give either trait=NAME, or event=NAME and property=NAME")
	}
	return nil
}

func (s *Server) getRejections(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return errorf(http.StatusBadRequest, "after=%q: want a rejection seq", v)
		}
	}
	rejs, err := store.Rejections(s.st.DB(), ws.Num, after, limit)
	if err != nil {
		return err
	}
	var next any
	if len(rejs) == limit {
		next = rejs[len(rejs)-1].Seq
	}
	if rejs == nil {
		rejs = []*store.Rejection{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rejections": rejs, "next": next})
	return nil
}

var workspaceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// createWorkspace serves POST /api/workspaces, behind s.admin.
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID string `json:"id"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Status == http.StatusBadRequest {
			ae.Msg = "body must be {\"id\": \"name\"}: " + ae.Msg
		}
		s.writeErr(w, r, err)
		return
	}
	if !workspaceName.MatchString(body.ID) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "id must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", "path": "/id"})
		return
	}
	_, keys, err := s.in.CreateWorkspace(r.Context(), body.ID, ingest.Keys{})
	if errors.Is(err, ingest.ErrExists) {
		writeError(w, http.StatusConflict, "workspace "+strconv.Quote(body.ID)+" already exists")
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": body.ID, "write_key": keys.WriteKey, "api_key": keys.APIKey})
}

// Event is one event in GET /api/users/{id}/events.
type Event struct {
	Event      string         `json:"event"`
	Timestamp  time.Time      `json:"timestamp"`
	MessageID  string         `json:"messageId,omitempty"`
	Properties map[string]any `json:"properties"`
}

// getUserEvents lists a profile's events (including those of profiles
// merged into it), oldest first.
func (s *Server) getUserEvents(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	id := r.PathValue("id")
	limit, err := intParam(r, "limit", 1000, 1, 100000)
	if err != nil {
		return err
	}
	db := s.st.DB()
	num, ok, err := store.ResolveID(db, ws.Num, id)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "no user %q", id)
	}
	var out []Event
	for _, n := range s.in.ProfileNums(ws, num) {
		err := store.ProfileEvents(r.Context(), db, ws.Num, n, func(ev store.StoredEvent) error {
			out = append(out, Event{Event: ev.Name, Timestamp: ev.Timestamp, MessageID: ev.MessageID, Properties: ev.Properties})
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Timestamp.Compare(b.Timestamp) })
	truncated := len(out) > limit
	if truncated {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []Event{}
	}
	canonical := id
	if p, ok, err := store.ReadProfile(db, ws.Num, num); err == nil && ok {
		canonical = p.ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": canonical, "events": out, "truncated": truncated})
	return nil
}
