package ingest

import (
	"errors"
	"fmt"

	"github.com/cohortdb/cohort/internal/store"
)

// The key lifecycle: a workspace's keys are issued (at its creation, from
// the configuration or environment, or by the admin API), listed by their
// public id, and revoked; every key added or revoked is logged, never its
// secret. docs/keys.md tells it to operators.

// RoleName is a role as the API and the logs spell it.
func RoleName(r store.Role) string {
	switch r {
	case store.RoleWrite:
		return "write"
	case store.RoleAPI:
		return "api"
	case store.RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("role %q", byte(r))
}

// ErrKeyNotFound reports a key id that names no key of the workspace.
var ErrKeyNotFound = errors.New("no such key")

// AddKey grants key the role on workspace ws (0 for the admin role). A key
// that already grants exactly that is left as it is and added is false;
// otherwise it is stored and logged, with by saying where it came from
// ("COHORT_API_KEY", "the admin API").
func (g *Ingester) AddKey(key string, role store.Role, ws uint32, by string) (added bool, err error) {
	old, ok, err := g.st.LookupKey(key)
	if err != nil {
		return false, fmt.Errorf("look up key: %w", err)
	}
	if ok && old.Role == role && old.Workspace == ws {
		return false, nil
	}
	b := g.st.DB().NewBatch()
	defer b.Close()
	if err := store.PutKey(b, key, store.KeyRecord{Role: role, Workspace: ws, CreatedAt: g.now().UTC()}); err != nil {
		return false, err
	}
	if err := b.Commit(syncWrite); err != nil {
		return false, fmt.Errorf("store key: %w", err)
	}
	args := []any{"workspace", g.workspaceName(ws), "role", RoleName(role), "key_id", store.KeyID(key), "by", by}
	if ok {
		g.log.Warn("key re-granted: it granted another role or workspace before", append(args, "was_role", RoleName(old.Role), "was_workspace", g.workspaceName(old.Workspace))...)
	} else {
		g.log.Info("key added", args...)
	}
	return true, nil
}

// IssueKey makes a new key with the role on workspace ws and returns its
// secret (shown once: the store keeps only its hash) and its record.
func (g *Ingester) IssueKey(role store.Role, ws uint32, by string) (string, store.KeyInfo, error) {
	prefix := map[store.Role]string{store.RoleWrite: "wk_", store.RoleAPI: "ak_", store.RoleAdmin: "adm_"}[role]
	if prefix == "" {
		return "", store.KeyInfo{}, fmt.Errorf("issue key: unknown %s", RoleName(role))
	}
	key := NewKey(prefix)
	if _, err := g.AddKey(key, role, ws, by); err != nil {
		return "", store.KeyInfo{}, err
	}
	_, rec, _, err := store.FindKey(g.st.DB(), store.KeyID(key))
	return key, store.KeyInfo{ID: store.KeyID(key), KeyRecord: rec}, err
}

// Keys lists the keys of workspace ws, oldest first.
func (g *Ingester) Keys(ws uint32) ([]store.KeyInfo, error) {
	return store.ListKeys(g.st.DB(), ws)
}

// RevokeKey deletes the key with public id on workspace ws; requests with
// it fail from the moment this returns. ErrKeyNotFound when the workspace
// has no key with that id.
func (g *Ingester) RevokeKey(ws uint32, id, by string) error {
	sk, rec, ok, err := store.FindKey(g.st.DB(), id)
	if err != nil {
		return err
	}
	if !ok || rec.Workspace != ws || rec.Role == store.RoleAdmin {
		return fmt.Errorf("key %q of workspace %q: %w", id, g.workspaceName(ws), ErrKeyNotFound)
	}
	if err := g.st.DB().Delete(sk, syncWrite); err != nil {
		return fmt.Errorf("revoke key %s: %w", id, err)
	}
	g.log.Info("key revoked", "workspace", g.workspaceName(ws), "role", RoleName(rec.Role), "key_id", id, "by", by)
	return nil
}

// workspaceName names workspace number ws for the logs.
func (g *Ingester) workspaceName(ws uint32) string {
	if ws == 0 {
		return "(admin)"
	}
	if w, ok := g.Workspace(ws); ok {
		return w.Name
	}
	return fmt.Sprintf("#%d", ws)
}
