//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sdkDir holds the pinned SDKs (package.json, package-lock.json) and the
// scripts that drive them.
var sdkDir = filepath.Join("testdata", "sdk")

// TestRealSDKs points the official Segment and RudderStack Node SDKs at the
// server, unchanged but for the host, and checks what the server made of
// their identify, track and alias calls.
func TestRealSDKs(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to run the official SDKs (testdata/sdk): %v", err)
	}
	ensureNodeModules(t, sdkDir)

	srv := startServer(t, t.TempDir())
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for _, sdk := range []struct{ name, script string }{
		{"segment", "segment.mjs"},
		{"rudderstack", "rudderstack.cjs"},
	} {
		t.Run(sdk.name, func(t *testing.T) {
			before := time.Now()
			rep := runSDKScript(t, node, sdk.script, srv.base, run)
			after := time.Now()
			checkSDKRun(t, srv, sdk.name, run, rep, before, after)
		})
	}

	// Nothing either SDK sent was rejected.
	var rej struct {
		Rejections []json.RawMessage `json:"rejections"`
	}
	srv.getJSON(t, "/api/rejections", &rej)
	if len(rej.Rejections) != 0 {
		t.Errorf("GET /api/rejections: %d rejections, want none: %s", len(rej.Rejections), rej.Rejections)
	}
	srv.stop(t)
}

// ensureNodeModules runs `npm ci` in dir (a testdata folder with a
// package.json and package-lock.json) unless node_modules already
// holds the pinned versions.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	stale := staleNodeModules(t, dir)
	if stale == "" {
		return
	}
	t.Logf("installing %s with npm ci: %s", dir, stale)
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is needed to install the pinned packages of %s: %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci --no-audit --no-fund in %s failed: %v\n%s", dir, err, out)
	}
	t.Logf("npm ci took %s", time.Since(start).Round(time.Millisecond))
	if stale := staleNodeModules(t, dir); stale != "" {
		t.Fatalf("after npm ci in %s: %s\n%s", dir, stale, out)
	}
}

// staleNodeModules says why node_modules does not hold what package.json
// pins, or "" when it does.
func staleNodeModules(t *testing.T, dir string) string {
	t.Helper()
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("%s/package.json: %v", dir, err)
	}
	// npm writes this file last.
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		return "node_modules is missing or incomplete"
	}
	for name, want := range pkg.Dependencies {
		var dep struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil {
			return fmt.Sprintf("%s is not installed", name)
		}
		if json.Unmarshal(b, &dep) != nil || dep.Version != want {
			return fmt.Sprintf("%s is installed at %q, package.json pins %q", name, dep.Version, want)
		}
	}
	return ""
}

// sdkReport is what the scripts print (see testdata/sdk/plan.cjs).
type sdkReport struct {
	SDK      string `json:"sdk"`
	Requests []struct {
		URL      string            `json:"url"`
		Headers  map[string]string `json:"headers"`
		Body     json.RawMessage   `json:"body"`
		Status   int               `json:"status"`
		Response any               `json:"response"`
	} `json:"requests"`
	Errors []string `json:"errors"`
}

// header looks a header up case-insensitively.
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// wireBatch is a request body the SDK sent, as the script decoded it.
type wireBatch struct {
	Batch  []wireMessage `json:"batch"`
	SentAt string        `json:"sentAt"`
}

type wireMessage struct {
	Type              string `json:"type"`
	MessageID         string `json:"messageId"`
	UserID            string `json:"userId"`
	AnonymousID       string `json:"anonymousId"`
	PreviousID        string `json:"previousId"`
	Event             string `json:"event"`
	Timestamp         string `json:"timestamp"`
	OriginalTimestamp string `json:"originalTimestamp"`
	SentAt            string `json:"sentAt"`
}

func runSDKScript(t *testing.T, node, script, host, run string) sdkReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, host, writeKey, run)
	cmd.Dir = sdkDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var rep sdkReport
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if decodeErr := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); decodeErr != nil {
		t.Fatalf("node %s %s %s %s: %v, and no report (%v)\nstdout:\n%s\nstderr:\n%s",
			script, host, writeKey, run, err, decodeErr, stdout.String(), stderr.String())
	}
	if err != nil || len(rep.Errors) > 0 {
		var b strings.Builder
		for i, r := range rep.Requests {
			fmt.Fprintf(&b, "request %d: POST %s (Content-Type %q, Content-Encoding %q) %s\n  -> HTTP %d %s\n",
				i, r.URL, header(r.Headers, "Content-Type"), header(r.Headers, "Content-Encoding"), r.Body, r.Status, mustJSON(r.Response))
		}
		t.Fatalf("node %s %s %s %s: %v\nerrors reported:\n  %s\n%sstderr:\n%s",
			script, host, writeKey, run, err, strings.Join(rep.Errors, "\n  "), b.String(), stderr.String())
	}
	return rep
}

// expectedEvent is a track call of the plan.
type expectedEvent struct {
	user   string // the id it was sent with
	name   string
	props  string // JSON
	oldest bool   // sent with a timestamp two hours back
}

// sdkPlan mirrors calls() in testdata/sdk/plan.cjs.
func sdkPlan(sdk, run string) (user, anon string, types []string, traits string, events []expectedEvent) {
	user = sdk + "-" + run + "-user"
	anon = sdk + "-" + run + "-anon"
	types = []string{"identify", "track", "track", "track", "track", "identify", "track", "alias"}
	// The user's own traits, and the anonymous profile's "referrer", which
	// the user's profile lacked; the user's "plan" wins over the anonymous
	// "free".
	traits = `{"name": "Ada Lovelace", "email": "ada+` + run + `@example.com", "plan": "pro", "age": 36,
		"vip": true, "address": {"city": "London", "postalCode": "W1"}, "tags": ["math", "poetry"],
		"referrer": "newsletter"}`
	events = []expectedEvent{
		{user, "Order Completed", `{"order_id": "order-` + run + `", "revenue": 42.5, "currency": "EUR", "coupon": null,
			"products": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}]}`, false},
		{user, "Song Played", `{"title": "Blue", "seconds": 181}`, false},
		{user, "Song Played", `{"title": "Red", "seconds": 240}`, false},
		{user, "Subscription Started", `{"tier": "gold"}`, true},
		{anon, "Product Viewed", `{"sku": "SKU-9", "price": 9.99, "in_stock": true}`, false},
	}
	return
}

func checkSDKRun(t *testing.T, srv *server, sdk, run string, rep sdkReport, before, after time.Time) {
	user, anon, types, traits, events := sdkPlan(sdk, run)

	// What went on the wire.
	if len(rep.Requests) == 0 {
		t.Fatalf("the SDK made no request")
	}
	var sent []wireMessage
	batchSentAt := map[string]string{} // messageId -> the batch's sentAt
	for i, r := range rep.Requests {
		if u, err := url.Parse(r.URL); err != nil || u.Path != "/v1/batch" {
			t.Errorf("request %d went to %s, want /v1/batch", i, r.URL)
		}
		if r.Status != 200 {
			t.Errorf("request %d: HTTP %d, want 200 (answer %s)", i, r.Status, mustJSON(r.Response))
		}
		if r.Response != nil && mustJSON(r.Response) != `{"success":true}` {
			t.Errorf("request %d: answer %s, want {\"success\":true}", i, mustJSON(r.Response))
		}
		var b wireBatch
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatalf("request %d: body %s: %v", i, r.Body, err)
		}
		for _, m := range b.Batch {
			batchSentAt[m.MessageID] = b.SentAt
		}
		sent = append(sent, b.Batch...)
	}
	if sdk == "rudderstack" {
		// What makes this SDK a test of its own: gzip bodies labelled as
		// form data, and a first request with the first call alone.
		for i, r := range rep.Requests {
			if ce, ct := header(r.Headers, "Content-Encoding"), header(r.Headers, "Content-Type"); ce != "gzip" || !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
				t.Errorf("request %d: Content-Encoding %q, Content-Type %q: the pinned SDK no longer sends gzip labelled as form data, which this test is meant to cover", i, ce, ct)
			}
		}
		var first wireBatch
		json.Unmarshal(rep.Requests[0].Body, &first)
		if len(first.Batch) != 1 || len(rep.Requests) < 2 {
			t.Errorf("first request carried %d messages in %d requests: the pinned SDK no longer sends its first call alone", len(first.Batch), len(rep.Requests))
		}
	}
	var gotTypes []string
	for _, m := range sent {
		gotTypes = append(gotTypes, m.Type)
	}
	if !slices.Equal(gotTypes, types) {
		t.Fatalf("the SDK sent %v, want %v", gotTypes, types)
	}
	var tracks []wireMessage
	for _, m := range sent {
		if m.MessageID == "" {
			t.Fatalf("the SDK sent a %s without messageId", m.Type)
		}
		if m.Type == "track" {
			tracks = append(tracks, m)
		}
	}

	// Both ids resolve to one profile, keyed by the userId, with the traits
	// of both.
	wantTraits := jsonValue(t, traits)
	for _, id := range []string{user, anon} {
		u, found := srv.user(t, id)
		if !found {
			t.Errorf("GET /api/users/%s: 404, want the profile of %s", id, user)
			continue
		}
		if u.ID != user {
			t.Errorf("GET /api/users/%s: id %q, want the canonical id %q", id, u.ID, user)
		}
		if ids := slices.Sorted(slices.Values(u.IDs)); !slices.Equal(ids, []string{anon, user}) {
			t.Errorf("GET /api/users/%s: ids %q, want %q", id, u.IDs, []string{user, anon})
		}
		if !reflect.DeepEqual(any(u.Traits), wantTraits) {
			t.Errorf("GET /api/users/%s: traits\n%s\nwant\n%s", id, mustJSON(u.Traits), mustJSON(wantTraits))
		}
	}

	// Both ids list the events of both, with the SDK's messageIds, their
	// properties, and the client's timestamps corrected for clock skew.
	for _, id := range []string{user, anon} {
		evs, found := srv.events(t, id)
		if !found {
			t.Errorf("GET /api/users/%s/events: 404", id)
			continue
		}
		if len(evs) != len(events) {
			t.Errorf("GET /api/users/%s/events: %d events, want %d:\n%s", id, len(evs), len(events), mustJSON(evs))
		}
		byID := map[string][]storedEvent{}
		for _, ev := range evs {
			byID[ev.MessageID] = append(byID[ev.MessageID], ev)
		}
		for i, want := range events {
			m := tracks[i]
			if m.Event != want.name {
				t.Fatalf("track %d: the SDK sent %q, the plan says %q", i, m.Event, want.name)
			}
			got := byID[m.MessageID]
			if len(got) != 1 {
				t.Errorf("GET /api/users/%s/events: %d events with messageId %s (%s sent for %s), want 1", id, len(got), m.MessageID, want.name, want.user)
				continue
			}
			ev := got[0]
			if ev.Event != want.name {
				t.Errorf("GET /api/users/%s/events: event %s is %q, want %q", id, m.MessageID, ev.Event, want.name)
			}
			if wantProps := jsonValue(t, want.props); !reflect.DeepEqual(any(ev.Properties), wantProps) {
				t.Errorf("GET /api/users/%s/events: %s properties\n%s\nwant\n%s", id, want.name, mustJSON(ev.Properties), mustJSON(wantProps))
			}
			checkTimestamp(t, id, ev, m, batchSentAt[m.MessageID], before, after, want.oldest)
		}
	}
}

// checkTimestamp checks a stored event's time against what the client sent:
// its timestamp (or RudderStack's originalTimestamp) moved by the time the
// request spent between sentAt and its arrival, which on one machine is
// between zero and the script's run time.
func checkTimestamp(t *testing.T, id string, ev storedEvent, m wireMessage, batchSentAt string, before, after time.Time, oldest bool) {
	t.Helper()
	client := m.Timestamp
	if client == "" {
		client = m.OriginalTimestamp
	}
	sentAt := m.SentAt
	if sentAt == "" {
		sentAt = batchSentAt
	}
	ct, err1 := time.Parse(time.RFC3339Nano, client)
	st, err2 := time.Parse(time.RFC3339Nano, sentAt)
	if err1 != nil || err2 != nil {
		t.Errorf("message %s: the SDK sent timestamp %q, sentAt %q: %v %v", m.MessageID, client, sentAt, err1, err2)
		return
	}
	const slack = time.Second
	lo, hi := ct.Add(-slack), ct.Add(max(after.Sub(st), 0)+slack)
	if ev.Timestamp.Before(lo) || ev.Timestamp.After(hi) {
		t.Errorf("GET /api/users/%s/events: %s at %s, want within [%s, %s] (client timestamp %s, sentAt %s)",
			id, ev.Event, ev.Timestamp.Format(time.RFC3339Nano), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano), client, sentAt)
	}
	if oldest && !ev.Timestamp.Before(before.Add(-time.Hour)) {
		t.Errorf("GET /api/users/%s/events: %s at %s, want the explicit timestamp of two hours before (%s)", id, ev.Event, ev.Timestamp.Format(time.RFC3339Nano), client)
	}
}
