package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
)

// segmentBody is the body of POST and PUT /api/segments.
type segmentBody struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Condition json.RawMessage `json:"condition"`
}

// segmentErr maps the segment package's errors to API errors.
func segmentErr(err error) error {
	var ie *segment.InvalidError
	switch {
	case errors.As(err, &ie):
		p := ie.Path
		return &apiError{Status: http.StatusBadRequest, Msg: ie.Msg, Path: &p}
	case errors.Is(err, segment.ErrNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, segment.ErrExists), errors.Is(err, segment.ErrConflict):
		return errorf(http.StatusConflict, "%v", err)
	}
	return err
}

func (s *Server) createSegment(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	var body segmentBody
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	seg, err := s.seg.Create(r.Context(), ws, body.ID, body.Name, body.Condition)
	if err != nil {
		return segmentErr(err)
	}
	writeJSON(w, http.StatusCreated, seg)
	return nil
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	writeJSON(w, http.StatusOK, map[string]any{"segments": s.seg.List(ws)})
	return nil
}

func (s *Server) getSegment(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	seg, err := s.seg.Get(ws, r.PathValue("id"))
	if err != nil {
		return segmentErr(err)
	}
	writeJSON(w, http.StatusOK, seg)
	return nil
}

func (s *Server) putSegment(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	var body segmentBody
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	id := r.PathValue("id")
	if body.ID != "" && body.ID != id {
		p := "/id"
		return &apiError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("id %q in the body differs from %q in the URL", body.ID, id), Path: &p}
	}
	seg, err := s.seg.Update(r.Context(), ws, id, body.Name, body.Condition)
	if err != nil {
		return segmentErr(err)
	}
	writeJSON(w, http.StatusOK, seg)
	return nil
}

func (s *Server) deleteSegment(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	if err := s.seg.Delete(r.Context(), ws, r.PathValue("id")); err != nil {
		return segmentErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) segmentMembers(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	limit, err := intParam(r, "limit", 1000, 1, 100000)
	if err != nil {
		return err
	}
	var after uint32
	first := true
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.ParseUint(c, 36, 32)
		if err != nil {
			return errorf(http.StatusBadRequest, "cursor=%q is not a cursor this server gave", c)
		}
		after, first = uint32(n), false
	}
	ids, last, more, err := s.seg.Members(r.Context(), ws, r.PathValue("id"), after, first, limit)
	if err != nil {
		return segmentErr(err)
	}
	var next any
	if more {
		next = strconv.FormatUint(uint64(last), 36)
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": ids, "next_cursor": next})
	return nil
}

func (s *Server) query(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	var body struct {
		Condition json.RawMessage `json:"condition"`
		Members   bool            `json:"members"`
		Limit     *int            `json:"limit"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	limit := 100
	if body.Limit != nil {
		if *body.Limit < 0 || *body.Limit > 100000 {
			p := "/limit"
			return &apiError{Status: http.StatusBadRequest, Msg: "limit must be from 0 to 100000", Path: &p}
		}
		limit = *body.Limit
	}
	res, err := s.seg.Query(r.Context(), ws, body.Condition, body.Members, limit)
	if err != nil {
		return segmentErr(err)
	}
	if body.Members && res.Members == nil {
		res.Members = []string{}
	}
	out := map[string]any{"size": res.Size, "criteria": res.Criteria}
	if body.Members {
		out["members"] = res.Members
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
