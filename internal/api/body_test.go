package api_test

import (
	"strings"
	"testing"

	"github.com/cohortdb/cohort/internal/config"
)

// TestAPIBodyCap: every /api/* body over limits.max_api_body_bytes is
// answered 413 naming the limit, nothing is saved, and a body just under
// it is still served; /v1/* keeps its own caps.
func TestAPIBodyCap(t *testing.T) {
	const limit = 4096
	c := start(t, func(cfg *config.Config) { cfg.Limits.MaxAPIBodyBytes = limit })
	pad := func(n int) string { return strings.Repeat("x", n) }
	big := `{"id":"big","name":"` + pad(limit) + `","condition":{"trait":"plan","op":"exists"}}`
	cases := []struct{ method, path, body string }{
		{"POST", "/api/segments", big},
		{"PUT", "/api/segments/big", big},
		{"POST", "/api/query", `{"condition":{"trait":"plan","op":"in","value":["` + pad(limit) + `"]}}`},
		{"POST", "/api/sinks", `{"id":"s1","url":"http://127.0.0.1:1/` + pad(limit) + `"}`},
	}
	for _, tc := range cases {
		for _, chunked := range []bool{false, true} {
			r := c.doBody(tc.method, tc.path, bearer(apiKey), tc.body, chunked)
			msg, _ := r.Body["error"].(string)
			if r.Code != 413 || !strings.Contains(msg, "4096-byte limit") || !strings.Contains(msg, "limits.max_api_body_bytes") {
				t.Errorf("%s %s (%d bytes, chunked %v): %d %s", tc.method, tc.path, len(tc.body), chunked, r.Code, r.Raw)
			}
		}
	}
	r := c.doBody("POST", "/api/workspaces", bearer(adminKey), `{"id":"`+pad(limit)+`"}`, false)
	if r.Code != 413 {
		t.Errorf("workspace body over the cap: %d %s", r.Code, r.Raw)
	}
	if r := c.do("GET", "/api/segments", bearer(apiKey), nil); r.Code != 200 || len(r.Body["segments"].([]any)) != 0 {
		t.Errorf("a refused segment was saved: %s", r.Raw)
	}
	ok := `{"id":"ok","name":"` + pad(limit-200) + `","condition":{"trait":"plan","op":"exists"}}`
	if r := c.do("POST", "/api/segments", bearer(apiKey), []byte(ok)); r.Code != 201 {
		t.Errorf("a %d-byte segment under the cap: %d %s", len(ok), r.Code, r.Raw)
	}
	// /v1 is capped by max_batch_bytes, not by the /api limit.
	props := `{"p":"` + pad(2*limit) + `"}`
	if r := c.ingest("track", `{"userId":"u1","event":"E","properties":`+props+`}`); r.Code != 200 {
		t.Errorf("a /v1 body over the /api cap: %d %s", r.Code, r.Raw)
	}
}

// TestSinkUnknownSegment: a sink naming a segment the workspace lacks is
// refused with the JSON pointer of the name.
func TestSinkUnknownSegment(t *testing.T) {
	c := start(t, nil)
	if r := c.do("POST", "/api/segments", bearer(apiKey), []byte(`{"id":"pro","condition":{"trait":"plan","op":"eq","value":"pro"}}`)); r.Code != 201 {
		t.Fatalf("segment: %d %s", r.Code, r.Raw)
	}
	for _, tc := range []struct{ body, path, word string }{
		{`{"id":"s1","url":"http://127.0.0.1:1/hook","segments":["pro","nope"]}`, "/segments/1", `"nope"`},
		{`{"id":"s1","url":"http://127.0.0.1:1/hook","segments":["typo"]}`, "/segments/0", `"typo"`},
		{`{"id":"s1","url":"ftp://x/hook"}`, "/url", "http(s)"},
		{`{"id":"s1","type":"carrier-pigeon","url":"http://127.0.0.1:1/hook"}`, "/type", "carrier-pigeon"},
		{`{"id":"bad id","url":"http://127.0.0.1:1/hook"}`, "/id", "letters"},
	} {
		r := c.do("POST", "/api/sinks", bearer(apiKey), []byte(tc.body))
		msg, _ := r.Body["error"].(string)
		if r.Code != 400 || r.Body["path"] != tc.path || !strings.Contains(msg, tc.word) {
			t.Errorf("%s: %d %s", tc.body, r.Code, r.Raw)
		}
	}
	if r := c.do("GET", "/api/sinks", bearer(apiKey), nil); len(r.Body["sinks"].([]any)) != 0 {
		t.Errorf("a refused sink exists: %s", r.Raw)
	}
	if r := c.do("POST", "/api/sinks", bearer(apiKey), []byte(`{"id":"s1","url":"http://127.0.0.1:1/hook","segments":["pro"]}`)); r.Code != 201 {
		t.Errorf("a sink of an existing segment: %d %s", r.Code, r.Raw)
	}
	c.do("DELETE", "/api/sinks/s1", bearer(apiKey), nil)
}

// TestAdminBodyCap: the admin routes' bodies are capped by the same limit.
func TestAdminBodyCap(t *testing.T) {
	c := start(t, func(cfg *config.Config) { cfg.Limits.MaxAPIBodyBytes = 1024 })
	for _, path := range []string{"/api/workspaces", "/api/workspaces/default/keys"} {
		r := c.doBody("POST", path, bearer(adminKey), `{"role":"`+strings.Repeat("x", 2048)+`"}`, true)
		if msg, _ := r.Body["error"].(string); r.Code != 413 || !strings.Contains(msg, "1024-byte limit") {
			t.Errorf("POST %s over the cap: %d %s", path, r.Code, r.Raw)
		}
	}
}
