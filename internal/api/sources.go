package api

import (
	"errors"
	"net/http"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/source"
)

func sourceErr(err error) error {
	switch {
	case errors.Is(err, source.ErrNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, source.ErrUnsupported):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, source.ErrBusy):
		return errorf(http.StatusConflict, "%v", err)
	}
	return err
}

// listSources serves GET /api/sources: the sources feeding the workspace.
func (s *Server) listSources(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	list := []source.Status{}
	if s.opts.Sources != nil {
		list = s.opts.Sources.List(ws.Name)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sources": list})
	return nil
}

func (s *Server) sourceAction(act func(m *source.Manager, ws, name string) error) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
		name := r.PathValue("name")
		if s.opts.Sources == nil {
			return sourceErr(source.ErrNotFound)
		}
		if err := act(s.opts.Sources, ws.Name, name); err != nil {
			return sourceErr(err)
		}
		for _, st := range s.opts.Sources.List(ws.Name) {
			if st.Name == name {
				writeJSON(w, http.StatusOK, st)
				return nil
			}
		}
		return sourceErr(source.ErrNotFound)
	}
}

// bootstrapSource serves POST /api/sources/{name}/bootstrap {"table",
// "where"?}: 202 once the backfill has started.
func (s *Server) bootstrapSource(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error {
	var body struct {
		Table string `json:"table"`
		Where string `json:"where"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	if body.Table == "" {
		return errorf(http.StatusBadRequest, "table: name the table to bootstrap as database.table")
	}
	if s.opts.Sources == nil {
		return sourceErr(source.ErrNotFound)
	}
	if err := s.opts.Sources.Bootstrap(ws.Name, r.PathValue("name"), body.Table, body.Where); err != nil {
		return sourceErr(err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"source": r.PathValue("name"), "table": body.Table, "state": "running"})
	return nil
}
