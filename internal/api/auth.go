package api

import (
	"net/http"
	"strings"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// keyGrant resolves a key to what it grants.
func (s *Server) keyGrant(key string) (store.KeyRecord, *ingest.Workspace, error) {
	if key == "" {
		return store.KeyRecord{}, nil, errorf(http.StatusUnauthorized, "no key given")
	}
	rec, ok, err := s.st.LookupKey(key)
	if err != nil {
		return store.KeyRecord{}, nil, err
	}
	if !ok {
		return store.KeyRecord{}, nil, errorf(http.StatusUnauthorized, "unknown key")
	}
	if rec.Role == store.RoleAdmin {
		return rec, nil, nil
	}
	ws, ok := s.in.Workspace(rec.Workspace)
	if !ok {
		return store.KeyRecord{}, nil, errorf(http.StatusUnauthorized, "the key's workspace no longer exists")
	}
	return rec, ws, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	return strings.TrimSpace(tok), ok
}

// apiHandler is a management/query handler of one workspace.
type apiHandler func(w http.ResponseWriter, r *http.Request, ws *ingest.Workspace) error

// api checks the bearer key (an api key of the workspace) and runs h.
func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cohort"`)
			writeError(w, http.StatusUnauthorized, "missing Authorization: Bearer <api key>")
			return
		}
		rec, ws, err := s.keyGrant(key)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		switch rec.Role {
		case store.RoleWrite:
			writeError(w, http.StatusForbidden, "this is a write key: it can only send data to /v1; use the workspace's api key")
			return
		case store.RoleAdmin:
			writeError(w, http.StatusForbidden, "this is the admin key: it manages workspaces and their keys; use a workspace's api key")
			return
		}
		if err := h(w, r, ws); err != nil {
			s.writeErr(w, r, err)
		}
	}
}
