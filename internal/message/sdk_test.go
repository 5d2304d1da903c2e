package message

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cohortdb/cohort/internal/model"
)

// seed reads one file of the fuzz seed corpus (go test fuzz v1 format).
func seed(t *testing.T, name string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", name)
	}
	r, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(lines[1], "uint8("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return fuzzRoute(uint8(r)), []byte(body)
}

// TestSDKPayloads decodes payloads shaped as the official Segment and
// RudderStack server SDKs send them: every message must be accepted.
func TestSDKPayloads(t *testing.T) {
	type check func(t *testing.T, items []Item)
	ts := func(i int, want string) check {
		return func(t *testing.T, items []Item) {
			if got := items[i].Msg.Timestamp; !got.Equal(at(want)) {
				t.Errorf("item %d: Timestamp %v, want %s", i, got, want)
			}
		}
	}
	for _, tc := range []struct {
		file     string
		n        int
		writeKey string
		checks   []check
	}{
		{file: "analytics_node_batch", n: 3, writeKey: "9mVtPqHf1jQsKk3KQZJ8kd8Xq5a0xYzB", checks: []check{
			// sentAt 12:00:00.456 by the client, received 12:00:00.000.
			ts(0, "2024-05-01T11:59:57.667Z"),
			func(t *testing.T, items []Item) {
				m := items[2].Msg
				if m.Type != model.Page || m.Properties["name"] != "Pricing" || m.AnonymousID == "" {
					t.Errorf("page: %+v", m)
				}
			},
		}},
		{file: "analytics_node_classic_batch", n: 2, checks: []check{
			func(t *testing.T, items []Item) {
				if m := items[0].Msg; m.Type != model.Alias || m.PreviousID != "anon-7d3a" {
					t.Errorf("alias: %+v", m)
				}
				g := items[1].Msg
				if g.Type != model.Group || g.Properties["traits"].(map[string]any)["employees"] != 329.0 || g.Traits != nil {
					t.Errorf("group: %+v", g)
				}
			},
		}},
		{file: "analytics_python_batch", n: 2, checks: []check{
			ts(0, "2024-05-01T11:59:58.123333Z"),
			func(t *testing.T, items []Item) {
				if m := items[1].Msg; m.Traits["age"] != 31.0 || m.AnonymousID != "" {
					t.Errorf("identify: %+v", m)
				}
			},
		}},
		{file: "analytics_go_batch", n: 2, checks: []check{
			ts(0, "2024-05-01T11:59:56.623456789Z"),
			func(t *testing.T, items []Item) {
				// analytics-go sends the library context at batch level.
				if m := items[0].Msg; m.Traits["source"] != "server" {
					t.Errorf("track traits: %v", m.Traits)
				}
				if m := items[1].Msg; m.Event != model.ScreenEvent || m.Properties["name"] != "Home" {
					t.Errorf("screen: %+v", m)
				}
			},
		}},
		{file: "rudderstack_node_batch", n: 3, checks: []check{
			// RudderStack sends originalTimestamp and a per-message sentAt.
			ts(0, "2024-05-01T11:59:50Z"),
			func(t *testing.T, items []Item) {
				if m := items[0].Msg; m.Traits["email"] != "x@rudderstack.com" || m.Properties["currency"] != "USD" {
					t.Errorf("track: %+v", m)
				}
			},
		}},
		{file: "rudderstack_group_single", n: 1, checks: []check{
			func(t *testing.T, items []Item) {
				if m := items[0].Msg; m.GroupID != "12345" || m.MessageID != "java-1" {
					t.Errorf("group: %+v", m)
				}
			},
		}},
		{file: "identify_single_curl", n: 1, writeKey: "abc123"},
		{file: "track_single_number_id", n: 1, checks: []check{
			func(t *testing.T, items []Item) {
				if m := items[0].Msg; m.UserID != "12345" || m.MessageID != "987654321" || m.Properties["title"] != "Intro été 🎬" {
					t.Errorf("track: %+v", m)
				}
			},
		}},
		{file: "alias_single", n: 1},
		{file: "screen_single", n: 1},
		{file: "page_single", n: 1, checks: []check{ts(0, "2024-05-01T11:59:00Z")}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			route, body := seed(t, tc.file)
			req, err := Decode(route, body, recv(), DefaultLimits()) // recv() is 2024-05-01T12:00:00Z
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Items) != tc.n || req.WriteKey != tc.writeKey {
				t.Fatalf("%d items, writeKey %q", len(req.Items), req.WriteKey)
			}
			for _, it := range req.Items {
				if it.Err != nil {
					t.Fatalf("item %d rejected: %v", it.Index, it.Err)
				}
			}
			for _, c := range tc.checks {
				c(t, req.Items)
			}
		})
	}
}
