package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

const (
	writeKey = "write-key-1"
	apiKey   = "api-key-123"
	adminKey = "admin-key-1"
)

type client struct {
	t   *testing.T
	url string
}

func start(t *testing.T, mod func(*config.Config)) *client {
	t.Helper()
	c, _ := startServer(t, mod, server.Options{})
	return c
}

// startServer starts a server with options o, returning it too.
func startServer(t *testing.T, mod func(*config.Config), o server.Options) (*client, *server.Server) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = writeKey, apiKey, adminKey
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.Open(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.API.MarkReady()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &client{t: t, url: hs.URL}, srv
}

type resp struct {
	Code   int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (c *client) do(method, path string, header map[string]string, body []byte) resp {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) resp {
	c.t.Helper()
	method, path := req.Method, req.URL.Path
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{Code: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			c.t.Fatalf("%s %s answered %d with non-JSON %q", method, path, res.StatusCode, raw)
		}
	}
	return r
}

// doBody sends body, chunked (no Content-Length) when asked, so a cap is
// checked both before and while reading.
func (c *client) doBody(method, path string, header map[string]string, body string, chunked bool) resp {
	c.t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length from net/http
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.send(req)
}

func basic(key string) map[string]string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(key, "")
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }

func (c *client) ingest(route, body string) resp {
	return c.do("POST", "/v1/"+route, basic(writeKey), []byte(body))
}

func (c *client) user(id string) resp { return c.do("GET", "/api/users/"+id, bearer(apiKey), nil) }

func (c *client) rejections() []any {
	r := c.do("GET", "/api/rejections", bearer(apiKey), nil)
	if r.Code != 200 {
		c.t.Fatalf("rejections: %d %s", r.Code, r.Raw)
	}
	return r.Body["rejections"].([]any)
}

func TestRequestRefusals(t *testing.T) {
	c := start(t, nil)
	bigProps := `{"pad":"` + strings.Repeat("x", 33*1024) + `"}`
	var batch strings.Builder
	batch.WriteString(`{"batch":[`)
	for i := range 40 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"type":"track","userId":"big","event":"E","properties":{"pad":"%s"}}`, strings.Repeat("y", 15*1024))
	}
	batch.WriteString(`]}`)
	cases := []struct {
		name, route string
		header      map[string]string
		body        string
		code        int
		errHas      string
	}{
		{"not JSON", "batch", basic(writeKey), `{"batch": [`, 400, "not a JSON object"},
		{"JSON but an array", "track", basic(writeKey), `[{"userId":"u1","event":"E"}]`, 400, "not a JSON object"},
		{"empty body", "track", basic(writeKey), ``, 400, "empty"},
		{"batch without batch array", "batch", basic(writeKey), `{"messages":[]}`, 400, "batch"},
		{"message over 32 KB", "track", basic(writeKey), `{"userId":"u1","event":"E","properties":` + bigProps + `}`, 413, "32768"},
		{"batch over 500 KB", "batch", basic(writeKey), batch.String(), 413, "limit"},
		{"no key", "track", nil, `{"userId":"u1","event":"E"}`, 401, "write key"},
		{"unknown key", "track", basic("nope-nope-nope"), `{"userId":"u1","event":"E"}`, 401, "invalid write key"},
		{"api key cannot ingest", "track", basic(apiKey), `{"userId":"u1","event":"E"}`, 403, "write key"},
		{"bad gzip", "track", map[string]string{"Authorization": basic(writeKey)["Authorization"], "Content-Encoding": "gzip"}, `not gzip`, 400, "gzip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("POST", "/v1/"+tc.route, tc.header, []byte(tc.body))
			if r.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.code, r.Raw)
			}
			msg, _ := r.Body["error"].(string)
			if !strings.Contains(msg, tc.errHas) {
				t.Errorf("error %q does not mention %q", msg, tc.errHas)
			}
		})
	}
	for _, id := range []string{"u1", "big"} {
		if r := c.user(id); r.Code != 404 {
			t.Errorf("a refused request stored user %q: %d %s", id, r.Code, r.Raw)
		}
	}
	// Refusals made with a valid key are in the dead-letter log, as sent.
	rejs := c.rejections()
	if len(rejs) != 7 {
		t.Fatalf("%d dead letters, want the 7 refusals made with a valid write key", len(rejs))
	}
	first := rejs[0].(map[string]any)
	if first["index"].(float64) != -1 || first["body"] != `{"batch": [` {
		t.Errorf("first dead letter %v, want the malformed body as sent", first)
	}
}

func TestBatchRejectsOnlyBadMessages(t *testing.T) {
	c := start(t, func(cfg *config.Config) { cfg.Limits.MaxEventNames = 2 })
	r := c.ingest("batch", `{"batch":[
		{"type":"identify","userId":"u1","traits":{"city":"London"},"messageId":"ok-1"},
		{"type":"track","event":"NoUser","messageId":"bad-1"},
		{"type":"track","userId":"u1","messageId":"bad-2"},
		{"type":"track","userId":"u1","event":"E","properties":[1,2],"messageId":"bad-3"},
		{"type":"track","userId":"u1","event":"E1","messageId":"ok-2"},
		{"type":"track","userId":"u1","event":"E2","messageId":"ok-3"},
		{"type":"track","userId":"u1","event":"E3","messageId":"bad-4"},
		{"type":"nonsense","userId":"u1","messageId":"bad-5"},
		"not an object"
	]}`)
	if r.Code != 200 || r.Body["success"] != false {
		t.Fatalf("answer %d %s", r.Code, r.Raw)
	}
	rej := r.Body["rejected"].([]any)
	var got []string
	for _, x := range rej {
		m := x.(map[string]any)
		got = append(got, fmt.Sprintf("%v:%v", m["index"], m["messageId"]))
		if m["error"] == "" {
			t.Errorf("rejection without a reason: %v", m)
		}
	}
	want := "[1:bad-1 2:bad-2 3:bad-3 6:bad-4 7:bad-5 8:]"
	if fmt.Sprint(got) != want {
		t.Fatalf("rejected %v, want %s", got, want)
	}
	u := c.user("u1")
	if u.Code != 200 || u.Body["traits"].(map[string]any)["city"] != "London" {
		t.Fatalf("valid messages of the batch not stored: %s", u.Raw)
	}
	ev := c.do("GET", "/api/users/u1/events", bearer(apiKey), nil)
	if n := len(ev.Body["events"].([]any)); n != 2 {
		t.Errorf("%d events stored, want E1 and E2: %s", n, ev.Raw)
	}
	if n := len(c.rejections()); n != 6 {
		t.Errorf("%d dead letters, want 6", n)
	}
	if r := c.ingest("batch", `{"batch":[{"type":"track","userId":"u1","event":"E1"}]}`); r.Body["success"] != true {
		t.Errorf("all-good batch: %s", r.Raw)
	}
}

func TestGzipAndWriteKeyInBody(t *testing.T) {
	c := start(t, nil)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, `{"batch":[{"type":"identify","userId":"gz","traits":{"a":1}}],"writeKey":%q}`, writeKey)
	zw.Close()
	// Labelled as form data, as the RudderStack SDK does; decided by Content-Encoding.
	r := c.do("POST", "/v1/batch", map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}, buf.Bytes())
	if r.Code != 200 || r.Body["success"] != true {
		t.Fatalf("gzip batch with writeKey in the body: %d %s", r.Code, r.Raw)
	}
	if u := c.user("gz"); u.Code != 200 {
		t.Fatalf("user not stored: %s", u.Raw)
	}
}

func TestKeyRolesAndIsolation(t *testing.T) {
	c := start(t, nil)
	c.ingest("identify", `{"userId":"u1","traits":{"secret":"default-ws"}}`)

	// Only the admin key creates workspaces.
	for _, k := range []string{writeKey, apiKey} {
		if r := c.do("POST", "/api/workspaces", bearer(k), []byte(`{"id":"acme"}`)); r.Code != 403 {
			t.Errorf("key %s created a workspace: %d %s", k, r.Code, r.Raw)
		}
	}
	r := c.do("POST", "/api/workspaces", bearer(adminKey), []byte(`{"id":"acme"}`))
	if r.Code != 201 || r.Body["id"] != "acme" {
		t.Fatalf("create workspace: %d %s", r.Code, r.Raw)
	}
	acmeWrite, acmeAPI := r.Body["write_key"].(string), r.Body["api_key"].(string)
	if r := c.do("POST", "/api/workspaces", bearer(adminKey), []byte(`{"id":"acme"}`)); r.Code != 409 {
		t.Errorf("duplicate workspace: %d, want 409", r.Code)
	}
	if r := c.do("POST", "/api/workspaces", bearer(adminKey), []byte(`{"id":"no spaces"}`)); r.Code != 400 || r.Body["path"] != "/id" {
		t.Errorf("bad workspace id: %d %s", r.Code, r.Raw)
	}

	// The new workspace sees none of default's data, and the reverse.
	if r := c.do("GET", "/api/users/u1", bearer(acmeAPI), nil); r.Code != 404 {
		t.Errorf("acme sees default's user: %d %s", r.Code, r.Raw)
	}
	c.do("POST", "/v1/identify", basic(acmeWrite), []byte(`{"userId":"u1","traits":{"secret":"acme-ws"}}`))
	if r := c.do("GET", "/api/users/u1", bearer(acmeAPI), nil); r.Body["traits"].(map[string]any)["secret"] != "acme-ws" {
		t.Errorf("acme's u1: %s", r.Raw)
	}
	if r := c.user("u1"); r.Body["traits"].(map[string]any)["secret"] != "default-ws" {
		t.Errorf("default's u1 changed by acme's write: %s", r.Raw)
	}
	if r := c.do("GET", "/api/schema", bearer(acmeAPI), nil); len(r.Body["traits"].([]any)) != 1 {
		t.Errorf("acme schema: %s", r.Raw)
	}

	// Role checks on the management API.
	for _, tc := range []struct {
		header map[string]string
		code   int
	}{
		{nil, 401},
		{bearer("unknown-key-1"), 401},
		{bearer(writeKey), 403},
		{bearer(adminKey), 403},
		{bearer(apiKey), 200},
	} {
		if r := c.do("GET", "/api/users/u1", tc.header, nil); r.Code != tc.code {
			t.Errorf("GET /api/users/u1 with %v: %d, want %d", tc.header, r.Code, tc.code)
		}
	}
}

func TestUsersAndSchemaValues(t *testing.T) {
	c := start(t, nil)
	c.ingest("batch", `{"batch":[
		{"type":"identify","userId":"u1","traits":{"city":"London","age":31}},
		{"type":"identify","userId":"u2","traits":{"city":"London","age":"$31"}},
		{"type":"identify","userId":"u3","traits":{"city":"Paris"}},
		{"type":"track","userId":"u1","event":"Song Played","properties":{"genre":"Pop","meta":{"year":2017}}},
		{"type":"track","userId":"u2","event":"Song Played","properties":{"genre":"Pop"}},
		{"type":"track","userId":"u3","event":"Song Played","properties":{"genre":"Rock"}}
	]}`)
	r := c.do("GET", "/api/schema/values?trait=city&limit=10", bearer(apiKey), nil)
	if fmt.Sprint(r.Body["values"]) != "[map[count:2 value:London] map[count:1 value:Paris]]" {
		t.Errorf("city values %v", r.Body["values"])
	}
	r = c.do("GET", "/api/schema/values?event=Song%20Played&property=genre&limit=1", bearer(apiKey), nil)
	if fmt.Sprint(r.Body["values"]) != "[map[count:2 value:Pop]]" {
		t.Errorf("genre values %v", r.Body["values"])
	}
	r = c.do("GET", "/api/schema/values?event=Song%20Played&property=meta.year", bearer(apiKey), nil)
	if fmt.Sprint(r.Body["values"]) != "[map[count:1 value:2017]]" {
		t.Errorf("nested values %v", r.Body["values"])
	}
	if r := c.do("GET", "/api/schema/values", bearer(apiKey), nil); r.Code != 400 {
		t.Errorf("values without a name: %d", r.Code)
	}
	// Both types of age are kept and queryable.
	if r := c.user("u2"); r.Body["traits"].(map[string]any)["age"] != "$31" {
		t.Errorf("u2 %s", r.Raw)
	}
	if r := c.do("DELETE", "/api/users/u2", bearer(apiKey), nil); r.Code != 204 {
		t.Fatalf("delete: %d %s", r.Code, r.Raw)
	}
	if r := c.user("u2"); r.Code != 404 {
		t.Errorf("deleted user still there: %d", r.Code)
	}
	if r := c.do("DELETE", "/api/users/u2", bearer(apiKey), nil); r.Code != 404 {
		t.Errorf("second delete: %d", r.Code)
	}
	if r := c.do("GET", "/nope", nil, nil); r.Code != 404 || r.Body["error"] == nil {
		t.Errorf("unknown route: %d %s", r.Code, r.Raw)
	}
}

func TestRateLimit(t *testing.T) {
	c := start(t, func(cfg *config.Config) { cfg.Limits.EventsPerSecond, cfg.Limits.Burst = 1, 3 })
	body := `{"batch":[{"type":"track","userId":"u","event":"E"},{"type":"track","userId":"u","event":"E"},{"type":"track","userId":"u","event":"E"}]}`
	if r := c.ingest("batch", body); r.Code != 200 {
		t.Fatalf("first batch: %d %s", r.Code, r.Raw)
	}
	r := c.ingest("batch", body)
	if r.Code != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d Retry-After=%q %s", r.Code, r.Header.Get("Retry-After"), r.Raw)
	}
	ev := c.do("GET", "/api/users/u/events", bearer(apiKey), nil)
	if n := len(ev.Body["events"].([]any)); n != 3 {
		t.Errorf("%d events stored, want only the first batch's 3", n)
	}
}
