package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, path string) *httptest.ResponseRecorder {
	t.Helper()
	h := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.Index)
	mux.HandleFunc("GET /console/{file}", h.Asset)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// TestServes: the page, its modules with a JavaScript type (browsers
// refuse modules otherwise), a CSP that allows only this origin, and a
// JSON 404 for anything else.
func TestServes(t *testing.T) {
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html"},
		{"/console/app.js", "text/javascript"},
		{"/console/style.css", "text/css"},
	} {
		rec := serve(t, c.path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q, want 200 %s", c.path, rec.Code, rec.Header().Get("Content-Type"), c.ctype)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
	}
	for _, p := range []string{"/console/nope.js", "/console/.hidden"} {
		if rec := serve(t, p); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

// TestOfflineAndComplete: no file loads anything from another origin (no
// CDN, no web fonts), and every module or stylesheet a file names is
// embedded.
func TestOfflineAndComplete(t *testing.T) {
	h := New()
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	ref := regexp.MustCompile(`(?:from\s+"\./([^"]+)"|href="/console/([^"]+)"|src="/console/([^"]+)")`)
	n := 0
	err := fs.WalkDir(h.root, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(h.root, path)
		if err != nil {
			return err
		}
		for _, m := range external.FindAllString(string(b), -1) {
			if !strings.HasSuffix(m, "//www.w3.org") { // the SVG namespace name, not a fetch
				t.Errorf("%s refers to another origin: %s", path, m)
			}
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2] + m[3]
			if _, err := fs.Stat(h.root, name); err != nil {
				t.Errorf("%s refers to %s, which is not embedded", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("only %d files embedded", n)
	}
}
