package api_test

import (
	"io"
	"net/http"
	"os"
	"testing"
)

// TestServeOpenAPI: GET /openapi.yaml answers, without a key, exactly the
// document in docs/.
func TestServeOpenAPI(t *testing.T) {
	c := start(t, nil)
	want, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(c.url + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/yaml; charset=utf-8" || string(got) != string(want) {
		t.Errorf("GET /openapi.yaml: %d %q, %d bytes; want 200 and the %d bytes of docs/openapi.yaml",
			res.StatusCode, res.Header.Get("Content-Type"), len(got), len(want))
	}
}
