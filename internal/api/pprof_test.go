package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// getRaw answers a GET with its status and body, whatever their format.
func getRaw(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// TestPprofAdminOnly: the runtime's profiles are served to the admin key
// and to no other.
func TestPprofAdminOnly(t *testing.T) {
	var logs logBuffer
	c, stop := startLogged(t, t.TempDir(), nil, &logs)
	defer stop()
	for _, tc := range []struct {
		name   string
		header map[string]string
		code   int
	}{
		{"no key", nil, 401},
		{"workspace api key", bearer(apiKey), 403},
		{"write key", bearer(writeKey), 403},
		{"admin key", bearer(adminKey), 200},
	} {
		if code, body := getRaw(t, c.url+"/debug/pprof/", tc.header); code != tc.code {
			t.Errorf("%s: GET /debug/pprof/ = %d, want %d (%.200s)", tc.name, code, tc.code, body)
		}
	}
	if code, body := getRaw(t, c.url+"/debug/pprof/goroutine?debug=1", bearer(adminKey)); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile: %d %.200s", code, body)
	}
	if code, body := getRaw(t, c.url+"/debug/pprof/profile?seconds=1", bearer(adminKey)); code != 200 || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", code, len(body))
	}
}
