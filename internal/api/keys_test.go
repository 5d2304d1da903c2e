package api_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// startLogged opens a server on dir with cfg's keys, logging into logs.
func startLogged(t *testing.T, dir string, mod func(*config.Config), logs *logBuffer) (*client, func()) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = dir
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = writeKey, apiKey, adminKey
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.Open(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.API.MarkReady()
	hs := httptest.NewServer(srv.Handler())
	stop := func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}
	return &client{t: t, url: hs.URL}, stop
}

func TestWorkspacesAndKeyLifecycle(t *testing.T) {
	var logs logBuffer
	c, stop := startLogged(t, t.TempDir(), nil, &logs)
	defer stop()

	// Only the admin key manages workspaces and keys.
	for _, k := range []string{writeKey, apiKey} {
		for _, rt := range [][2]string{{"GET", "/api/workspaces"}, {"GET", "/api/workspaces/default/keys"},
			{"POST", "/api/workspaces/default/keys"}, {"DELETE", "/api/workspaces/default/keys/key_0011223344556677"}} {
			if r := c.do(rt[0], rt[1], bearer(k), []byte(`{"role":"api"}`)); r.Code != 403 {
				t.Errorf("%s %s with %s: %d %s, want 403", rt[0], rt[1], k, r.Code, r.Raw)
			}
		}
	}
	if r := c.do("GET", "/api/workspaces", nil, nil); r.Code != 401 {
		t.Errorf("no key: %d", r.Code)
	}
	if r := c.do("POST", "/api/workspaces", bearer(adminKey), []byte(`{"id":"acme"}`)); r.Code != 201 {
		t.Fatalf("create acme: %d %s", r.Code, r.Raw)
	}
	r := c.do("GET", "/api/workspaces", bearer(adminKey), nil)
	ws, _ := r.Body["workspaces"].([]any)
	if r.Code != 200 || len(ws) != 2 || ws[0].(map[string]any)["id"] != "default" || ws[1].(map[string]any)["id"] != "acme" || ws[1].(map[string]any)["created_at"] == nil {
		t.Fatalf("GET /api/workspaces: %d %s", r.Code, r.Raw)
	}

	// The default workspace's keys: the configured write and api keys.
	keys := listKeys(t, c, "default")
	if len(keys) != 2 || keys[0]["role"] == keys[1]["role"] || keys[0]["created_at"] == nil {
		t.Fatalf("keys of default: %v", keys)
	}
	if keys[0]["role"] == "api" {
		keys[0], keys[1] = keys[1], keys[0]
	}
	if strings.Contains(c.do("GET", "/api/workspaces/default/keys", bearer(adminKey), nil).Raw, apiKey) {
		t.Fatal("a key listing shows a secret")
	}
	oldID := keys[1]["id"].(string)

	// Rotate the api key: issue a new one; both work until the old one is revoked.
	r = c.do("POST", "/api/workspaces/default/keys", bearer(adminKey), []byte(`{"role":"api"}`))
	newKey, _ := r.Body["key"].(string)
	newID, _ := r.Body["id"].(string)
	if r.Code != 201 || !strings.HasPrefix(newKey, "ak_") || newID == "" || r.Body["role"] != "api" {
		t.Fatalf("issue: %d %s", r.Code, r.Raw)
	}
	for _, k := range []string{apiKey, newKey} {
		if r := c.do("GET", "/api/segments", bearer(k), nil); r.Code != 200 {
			t.Errorf("before revocation, %s: %d", k, r.Code)
		}
	}
	if got := listKeys(t, c, "default"); len(got) != 3 || got[2]["id"] != newID {
		t.Errorf("after issuing: %v", got)
	}
	if r := c.do("DELETE", "/api/workspaces/default/keys/"+oldID, bearer(adminKey), nil); r.Code != 204 {
		t.Fatalf("revoke: %d %s", r.Code, r.Raw)
	}
	if r := c.do("GET", "/api/segments", bearer(apiKey), nil); r.Code != 401 {
		t.Errorf("the revoked key: %d, want 401", r.Code)
	}
	if r := c.do("GET", "/api/segments", bearer(newKey), nil); r.Code != 200 {
		t.Errorf("the new key: %d", r.Code)
	}

	// A write key, issued and revoked the same way.
	r = c.do("POST", "/api/workspaces/acme/keys", bearer(adminKey), []byte(`{"role":"write"}`))
	wk, _ := r.Body["key"].(string)
	if r.Code != 201 || !strings.HasPrefix(wk, "wk_") {
		t.Fatalf("issue write key: %d %s", r.Code, r.Raw)
	}
	if r := c.do("POST", "/v1/identify", basic(wk), []byte(`{"userId":"u1"}`)); r.Code != 200 {
		t.Errorf("the new write key: %d %s", r.Code, r.Raw)
	}
	if r := c.do("DELETE", "/api/workspaces/acme/keys/"+r.Body["id"].(string), bearer(adminKey), nil); r.Code != 204 {
		t.Errorf("revoke write key: %d", r.Code)
	}
	if r := c.do("POST", "/v1/identify", basic(wk), []byte(`{"userId":"u1"}`)); r.Code != 401 {
		t.Errorf("the revoked write key: %d", r.Code)
	}

	// Errors name what is wrong.
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/workspaces/default/keys", `{"role":"admin"}`, 400, `role must be "write" or "api"`},
		{"POST", "/api/workspaces/default/keys", `{"role":"api","x":1}`, 400, `unknown field`},
		{"POST", "/api/workspaces/nope/keys", `{"role":"api"}`, 404, `no workspace "nope"`},
		{"GET", "/api/workspaces/nope/keys", ``, 404, `no workspace "nope"`},
		{"DELETE", "/api/workspaces/default/keys/" + oldID, ``, 404, `has no key`},
		{"DELETE", "/api/workspaces/acme/keys/" + newID, ``, 404, `has no key`}, // another workspace's key
		{"DELETE", "/api/workspaces/default/keys/bogus", ``, 404, `has no key`},
	} {
		r := c.do(tc.method, tc.path, bearer(adminKey), []byte(tc.body))
		if msg, _ := r.Body["error"].(string); r.Code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d %q", tc.method, tc.path, tc.body, r.Code, r.Raw, tc.code, tc.want)
		}
	}

	// Every key added or revoked is logged, by id, never by secret.
	if got := logs.lines("key added"); len(got) != 7 { // default's 2, acme's 2, the admin key, 2 issued
		t.Errorf("%d 'key added' lines, want 7:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logs.lines("key revoked"); len(got) != 2 || !strings.Contains(got[0], oldID) {
		t.Errorf("'key revoked' lines:\n%s", strings.Join(got, "\n"))
	}
	for _, secret := range []string{apiKey, newKey, wk, adminKey} {
		if l := logs.lines(secret); len(l) > 0 {
			t.Errorf("the log shows the secret %s: %s", secret, l[0])
		}
	}
}

func listKeys(t *testing.T, c *client, ws string) []map[string]any {
	t.Helper()
	r := c.do("GET", "/api/workspaces/"+ws+"/keys", bearer(adminKey), nil)
	if r.Code != 200 {
		t.Fatalf("list keys of %s: %d %s", ws, r.Code, r.Raw)
	}
	var out []map[string]any
	for _, k := range r.Body["keys"].([]any) {
		out = append(out, k.(map[string]any))
	}
	return out
}

// TestConfiguredKeyOnRestart: a new COHORT_API_KEY on a restart is added
// beside the stored one, with a warning naming both ways out; the same
// key again adds and logs nothing.
func TestConfiguredKeyOnRestart(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	_, stop := startLogged(t, dir, nil, &logs)
	stop()
	if w := logs.lines("still work"); len(w) != 0 {
		t.Fatalf("first start warned: %v", w)
	}
	c, stop := startLogged(t, dir, func(cfg *config.Config) { cfg.APIKey = "api-key-rotated" }, &logs)
	w := logs.lines("level=WARN")
	if len(w) != 1 || !strings.Contains(w[0], "its keys stored before still work") || !strings.Contains(w[0], "COHORT_API_KEY") {
		t.Fatalf("restart with a new api key: warnings %q", w)
	}
	for _, k := range []string{apiKey, "api-key-rotated"} {
		if r := c.do("GET", "/api/segments", bearer(k), nil); r.Code != 200 {
			t.Errorf("%s after the restart: %d", k, r.Code)
		}
	}
	keys := listKeys(t, c, "default")
	stop()
	if len(keys) != 3 {
		t.Errorf("keys after the restart: %v", keys)
	}
	before := len(logs.lines("key added"))
	_, stop = startLogged(t, dir, func(cfg *config.Config) { cfg.APIKey = "api-key-rotated" }, &logs)
	if n := len(logs.lines("key added")); n != before || len(logs.lines("level=WARN")) != 1 {
		t.Errorf("a restart with the same keys logged %d more 'key added' lines", n-before)
	}
	stop()
}
