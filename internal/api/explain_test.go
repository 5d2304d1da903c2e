package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHistoryAndExplainHTTP checks the two routes' shapes and refusals
// over the articles' small world: MoEngage's "added to cart exactly 3
// times in the last 7 days".
func TestHistoryAndExplainHTTP(t *testing.T) {
	c := start(t, nil)
	articleData(c)
	cond := `{"event":"Added To Cart","count":{"op":"eq","value":3},"within":{"last":"7d"}}`
	if r := c.api("POST", "/api/segments", `{"id":"cart3","condition":`+cond+`}`); r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Raw)
	}
	r := c.api("GET", "/api/segments/cart3/history?step=1h", "")
	if r.Code != 200 {
		t.Fatalf("history: %d %s", r.Code, r.Raw)
	}
	pts := r.Body["points"].([]any)
	if len(pts) < 24 || len(pts) > 25 {
		t.Fatalf("a day by hour gave %d points", len(pts))
	}
	last := pts[len(pts)-1].(map[string]any)
	if last["size"] != float64(1) {
		t.Errorf("the last point %v, want the live size 1 (alice)", last)
	}
	if first := pts[0].(map[string]any); first["size"] != float64(0) {
		t.Errorf("the first point %v, want 0: the segment did not exist a day ago", first)
	}
	from := time.Now().UTC().AddDate(0, 0, -3).Format(time.RFC3339)
	if r := c.api("GET", "/api/segments/cart3/history?step=1d&from="+from, ""); r.Code != 200 || len(r.Body["points"].([]any)) < 3 {
		t.Errorf("history by day: %d %s", r.Code, r.Raw)
	}
	for _, q := range []struct{ query, says string }{
		{"step=5m", "step"},
		{"from=yesterday", "from"},
		{"to=2026-13-01T00:00:00Z", "to"},
		{"from=2020-01-01T00:00:00Z", "at most"},
	} {
		r := c.api("GET", "/api/segments/cart3/history?"+q.query, "")
		if msg, _ := r.Body["error"].(string); r.Code != 400 || !strings.Contains(msg, q.says) {
			t.Errorf("history?%s: %d %s, want 400 naming %q", q.query, r.Code, r.Raw, q.says)
		}
	}
	if r := c.api("GET", "/api/segments/nope/history", ""); r.Code != 404 {
		t.Errorf("unknown segment: %d %s", r.Code, r.Raw)
	}

	for user, in := range map[string]bool{"alice": true, "bob": false, "carol": false} {
		r := c.api("GET", "/api/users/"+user+"/explain?segment=cart3", "")
		if r.Code != 200 {
			t.Fatalf("explain %s: %d %s", user, r.Code, r.Raw)
		}
		if r.Body["member"] != in || r.Body["matches"] != in || r.Body["user"] != user || r.Body["segment"] != "cart3" {
			t.Errorf("explain %s: %s, want member %v", user, r.Raw, in)
		}
		leaves := r.Body["leaves"].([]any)
		if len(leaves) != 1 {
			t.Fatalf("explain %s: leaves %v", user, leaves)
		}
		leaf := leaves[0].(map[string]any)
		want := map[string]float64{"alice": 3, "bob": 4, "carol": 2}[user]
		if leaf["path"] != "" || leaf["value"] != want || leaf["count"] != want || leaf["matched"] != in {
			t.Errorf("explain %s: leaf %v, want the count %v", user, leaf, want)
		}
		if _, ok := r.Body["next_change_at"].(string); !ok {
			t.Errorf("explain %s: a 7-day window has a next change: %s", user, r.Raw)
		}
	}
	// A JSON page names the latest durable seq, where a live view starts.
	jsonPage := map[string]string{"Authorization": "Bearer " + apiKey, "Accept": "application/json"}
	r = c.do("GET", "/api/changes?since=0&limit=1", jsonPage, nil)
	lastSeq, _ := r.Body["last"].(float64)
	if r.Code != 200 || lastSeq < 1 || r.Body["next"] != float64(1) {
		t.Fatalf("changes page: %d %s, want next 1 and last ≥ 1", r.Code, r.Raw)
	}
	if r := c.do("GET", fmt.Sprintf("/api/changes?since=%d", int(lastSeq)), jsonPage, nil); r.Code != 200 || len(r.Body["changes"].([]any)) != 0 {
		t.Errorf("changes since last: %d %s, want none", r.Code, r.Raw)
	}
	if r := c.api("GET", "/api/users/alice/explain", ""); r.Code != 400 {
		t.Errorf("explain without a segment: %d %s", r.Code, r.Raw)
	}
	if r := c.api("GET", "/api/users/nobody/explain?segment=cart3", ""); r.Code != 404 {
		t.Errorf("explain of an unknown user: %d %s", r.Code, r.Raw)
	}
	if r := c.api("GET", "/api/users/alice/explain?segment=nope", ""); r.Code != 404 {
		t.Errorf("explain in an unknown segment: %d %s", r.Code, r.Raw)
	}
}
