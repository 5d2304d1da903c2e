package api

import (
	"errors"
	"net/http"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/sink"
)

func sinkErr(err error) error {
	var ie *sink.InvalidError
	switch {
	case errors.As(err, &ie):
		p := ie.Path
		return &apiError{Status: http.StatusBadRequest, Msg: ie.Error(), Path: &p}
	case errors.Is(err, sink.ErrInvalid):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, sink.ErrNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, sink.ErrExists):
		return errorf(http.StatusConflict, "%v", err)
	}
	return err
}

// createSink serves POST /api/sinks {"id", "type": "webhook", "url",
// "segments"?, "secret"?, "batch"?, "from"?}: deliveries start after the
// current change seq, or after "from" (0: the whole history).
func (s *Server) createSink(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	var body struct {
		sink.Config
		From *uint64 `json:"from"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	st, err := s.snk.Create(r.Context(), ws, body.Config, body.From)
	if err != nil {
		return sinkErr(err)
	}
	writeJSON(w, http.StatusCreated, st)
	return nil
}

func (s *Server) listSinks(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	writeJSON(w, http.StatusOK, map[string]any{"sinks": s.snk.List(ws)})
	return nil
}

func (s *Server) getSink(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	st, err := s.snk.Get(ws, r.PathValue("id"))
	if err != nil {
		return sinkErr(err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) deleteSink(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	if err := s.snk.Delete(r.Context(), ws, r.PathValue("id")); err != nil {
		return sinkErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
