package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// The admin key's routes beyond creating workspaces: listing workspaces,
// and each workspace's key lifecycle (list, issue, revoke).

// admin checks that the bearer key is the admin key and runs h.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cohort"`)
			writeError(w, http.StatusUnauthorized, "missing Authorization: Bearer <admin key>")
			return
		}
		rec, _, err := s.keyGrant(key)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if rec.Role != store.RoleAdmin {
			writeError(w, http.StatusForbidden, "this route needs the admin key; a workspace's keys cannot manage workspaces or keys")
			return
		}
		h(w, r)
	}
}

// WorkspaceInfo is one workspace in GET /api/workspaces.
type WorkspaceInfo struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	recs, err := s.st.Workspaces()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]WorkspaceInfo, len(recs))
	for i, rec := range recs {
		out[i] = WorkspaceInfo{ID: rec.Name, CreatedAt: rec.CreatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workspaces": out})
}

// KeyInfo is one key in GET /api/workspaces/{id}/keys: never its secret.
type KeyInfo struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"`
	CreatedAt *time.Time `json:"created_at"` // null for keys stored before creation times were kept
}

func keyInfo(k store.KeyInfo) KeyInfo {
	out := KeyInfo{ID: k.ID, Role: ingest.RoleName(k.Role)}
	if !k.CreatedAt.IsZero() {
		out.CreatedAt = &k.CreatedAt
	}
	return out
}

// pathWorkspace is the workspace named by the {id} of the path, or a 404.
func (s *Server) pathWorkspace(w http.ResponseWriter, r *http.Request) (*ingest.Workspace, bool) {
	ws, ok := s.in.WorkspaceByName(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no workspace "+strconv.Quote(r.PathValue("id")))
	}
	return ws, ok
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathWorkspace(w, r)
	if !ok {
		return
	}
	keys, err := s.in.Keys(ws.Num)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = keyInfo(k)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (s *Server) issueKey(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathWorkspace(w, r)
	if !ok {
		return
	}
	var body struct {
		Role string `json:"role"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Status == http.StatusBadRequest {
			ae.Msg = `body must be {"role": "write"|"api"}: ` + ae.Msg
		}
		s.writeErr(w, r, err)
		return
	}
	role, ok := map[string]store.Role{"write": store.RoleWrite, "api": store.RoleAPI}[body.Role]
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": `role must be "write" or "api", not ` + strconv.Quote(body.Role), "path": "/role"})
		return
	}
	secret, k, err := s.in.IssueKey(role, ws.Num, "the admin API")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": k.ID, "role": body.Role, "key": secret, "created_at": k.CreatedAt})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathWorkspace(w, r)
	if !ok {
		return
	}
	err := s.in.RevokeKey(ws.Num, r.PathValue("key_id"), "the admin API")
	if errors.Is(err, ingest.ErrKeyNotFound) {
		writeError(w, http.StatusNotFound, "workspace "+strconv.Quote(ws.Name)+" has no key "+strconv.Quote(r.PathValue("key_id")))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
