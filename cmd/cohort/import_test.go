package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/store"
)

const testWriteKey = "wk_import_test_key"

func fixture(name string) string { return filepath.Join("testdata", "import", name) }

// doImport runs an import as the command line would, with fast retries,
// returning its summary and outputs.
func doImport(t *testing.T, tune func(*importConfig), args ...string) (*importSummary, string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cfg, err := parseImportArgs(args, &stderr)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	cfg.retryBase, cfg.retryMax = time.Millisecond, 5*time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	sum, err := runImport(context.Background(), cfg, &stdout, &stderr)
	return sum, stdout.String(), stderr.String(), err
}

// counts are a summary's totals.
type counts struct{ Read, Accepted, Duplicates, Rejected int }

func countsOf(s *importSummary) counts {
	return counts{s.Read, s.Accepted, s.Duplicates, s.Rejected}
}

// reasons lists a summary's rejection reasons as "count reason @ first".
func reasons(s *importSummary) []string {
	var out []string
	for _, r := range s.Reasons {
		out = append(out, fmt.Sprintf("%d %s @ %s", r.Count, r.Reason, r.First))
	}
	return out
}

// openData opens a data directory the way the server does.
func openData(t *testing.T, dir string) (*server.Server, *ingest.Workspace) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = dir
	cfg.WriteKey = testWriteKey
	srv, err := server.Open(cfg, server.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { srv.Close() })
	ws, ok := srv.In.WorkspaceByName("default")
	if !ok {
		t.Fatal("no default workspace")
	}
	return srv, ws
}

// profileOf reads the profile an id resolves to, as GET /api/users/{id} would.
func profileOf(t *testing.T, srv *server.Server, ws *ingest.Workspace, id string) (uint32, *store.ProfileRecord) {
	t.Helper()
	num, ok, err := store.ResolveID(srv.St.DB(), ws.Num, id)
	if err != nil || !ok {
		t.Fatalf("resolve %q: ok=%v err=%v", id, ok, err)
	}
	p, ok, err := store.ReadProfile(srv.St.DB(), ws.Num, num)
	if err != nil || !ok {
		t.Fatalf("read profile of %q: ok=%v err=%v", id, ok, err)
	}
	return num, p
}

func eventsOf(t *testing.T, srv *server.Server, ws *ingest.Workspace, num uint32) []model.Event {
	t.Helper()
	var evs []model.Event
	err := store.ProfileEvents(context.Background(), srv.St.DB(), ws.Num, num, func(e store.StoredEvent) error {
		evs = append(evs, e.Event)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// matchLine reports whether some line of text matches the pattern.
func matchLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern + `$`).MatchString(text)
}

var eventsWant = struct {
	counts  counts
	reasons []string
}{
	counts{Read: 11, Accepted: 6, Duplicates: 0, Rejected: 5},
	[]string{
		"2 line is not valid JSON @ testdata/import/events.ndjson:3",
		`2 message has neither "userId" nor "anonymousId" @ testdata/import/events.ndjson:4`,
		`1 track message has no "event" @ testdata/import/events.ndjson:5`,
	},
}

func TestImportNDJSONIntoDataDir(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := importCmd([]string{"--data", dir, "--create", fixture("events.ndjson")}, &stdout, &stderr); err != nil {
		t.Fatalf("import: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, pat := range []string{
		`Imported 1 file \(579 B\) into data directory .*, workspace "default" in .*\.`,
		`  messages read +11`,
		`  accepted +6`,
		`  duplicates +0  already stored: skipped`,
		`  rejected +5`,
		`  2  line is not valid JSON +testdata/import/events.ndjson:3: invalid character .*`,
		`  2  message has neither "userId" nor "anonymousId" +testdata/import/events.ndjson:4`,
		`  1  track message has no "event" +testdata/import/events.ndjson:5`,
		`Rejected messages do not make the import fail\. Each is kept in the dead-letter log \(GET /api/rejections\)\.`,
	} {
		if !matchLine(out, pat) {
			t.Errorf("summary has no line matching %q:\n%s", pat, out)
		}
	}

	srv, ws := openData(t, dir)
	if _, p := profileOf(t, srv, ws, "u1"); !reflect.DeepEqual(p.Traits, map[string]any{"name": "Ada", "plan": "pro"}) {
		t.Errorf("u1 traits = %v", p.Traits)
	}
	num, _ := profileOf(t, srv, ws, "u1")
	if evs := eventsOf(t, srv, ws, num); len(evs) != 1 || evs[0].Name != "Signed Up" || !strings.HasPrefix(evs[0].MessageID, "import-") {
		t.Errorf("u1 events = %+v", evs)
	}
	// a1 was aliased to u3: both resolve to one profile with both traits.
	n3, p3 := profileOf(t, srv, ws, "u3")
	na, _ := profileOf(t, srv, ws, "a1")
	if n3 != na || !reflect.DeepEqual(p3.Traits, map[string]any{"ref": "blog", "age": 31.0}) {
		t.Errorf("u3=%d a1=%d traits %v", n3, na, p3.Traits)
	}
	n2, _ := profileOf(t, srv, ws, "u2")
	if evs := eventsOf(t, srv, ws, n2); len(evs) != 1 || evs[0].Name != model.PageEvent || evs[0].MessageID != "m-page-1" {
		t.Errorf("u2 events = %+v", evs)
	}

	// Every rejection is in the dead-letter log, saying where it came from.
	rejs, err := store.Rejections(srv.St.DB(), ws.Num, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rejs {
		if r.Source != "import" {
			t.Errorf("rejection source %q", r.Source)
		}
		got = append(got, r.Error)
	}
	want := []string{
		"testdata/import/events.ndjson:3: line is not valid JSON: invalid character 'h' in literal true (expecting 'r')",
		`testdata/import/events.ndjson:4: message has neither "userId" nor "anonymousId"`,
		`testdata/import/events.ndjson:5: track message has no "event"`,
		`testdata/import/events.ndjson:11: message has neither "userId" nor "anonymousId"`,
		"testdata/import/events.ndjson:12: line is not valid JSON: invalid character 'n' looking for beginning of object key string",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dead letters:\n got %q\nwant %q", got, want)
	}
	if rejs[0].Body != "this is not json" || !strings.Contains(string(rejs[1].Message), `"Orphan Event"`) {
		t.Errorf("dead letters keep the message: %q / %s", rejs[0].Body, rejs[1].Message)
	}
}

func TestImportCSVTyping(t *testing.T) {
	dir := t.TempDir()
	sum, out, _, err := doImport(t, nil, "--data", dir, "--create", fixture("users.csv"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got, want := countsOf(sum), (counts{Read: 6, Accepted: 4, Rejected: 2}); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if got, want := reasons(sum), []string{
		`1 message has neither "userId" nor "anonymousId" @ testdata/import/users.csv:6`,
		"1 row has a different number of fields than the header @ testdata/import/users.csv:7",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q, want %q", got, want)
	}

	srv, ws := openData(t, dir)
	for id, want := range map[string]map[string]any{
		// Numbers, booleans, strings; the empty plan and the blank
		// nickname are skipped; 02139 is no JSON number.
		"u1": {"name": "Ada Lovelace", "age": 36.0, "vip": true, "score": 98.5, "zip": "02139", "signup": "2024-01-02T03:04:05Z"},
		// A quoted comma, FALSE, an exponent; the empty signup is skipped.
		"u4": {"name": "Grace, Hopper", "age": 85.0, "vip": false, "score": -1500.0, "zip": 10001.0, "plan": "enterprise", "nickname": "amazing grace"},
		// Text that only looks typed stays text; 1e999 is out of range.
		"u5": {"name": "Linus", "age": "abc", "vip": "yes", "score": "1e999", "plan": "free"},
		// An anonymousId column identifies rows without a userId.
		"anon-7": {"name": "Visitor"},
	} {
		_, p := profileOf(t, srv, ws, id)
		if !reflect.DeepEqual(p.Traits, want) {
			t.Errorf("%s traits =\n %#v\nwant\n %#v", id, p.Traits, want)
		}
	}
}

func TestImportCSVIDColumn(t *testing.T) {
	tmp := t.TempDir()
	path := filepath.Join(tmp, "contacts.csv")
	os.WriteFile(path, []byte("email,plan\nada@example.com,pro\n"), 0o644)
	dir := filepath.Join(tmp, "data")
	sum, out, _, err := doImport(t, nil, "--data", dir, "--create", "--id-column", "email", path)
	if err != nil || sum.Accepted != 1 {
		t.Fatalf("import: %v\n%s", err, out)
	}
	// --id-column anonymousId: the rows are anonymous profiles.
	anon := filepath.Join(tmp, "visitors.csv")
	os.WriteFile(anon, []byte("anonymousId,plan\nv-1,free\n"), 0o644)
	if sum, out, _, err := doImport(t, nil, "--data", dir, "--create", "--id-column", "anonymousId", anon); err != nil || sum.Accepted != 1 {
		t.Fatalf("import: %v\n%s", err, out)
	}
	srv, ws := openData(t, dir)
	if _, p := profileOf(t, srv, ws, "ada@example.com"); !reflect.DeepEqual(p.Traits, map[string]any{"plan": "pro"}) || p.UserID != "ada@example.com" {
		t.Errorf("profile = %+v", p)
	}
	if _, p := profileOf(t, srv, ws, "v-1"); !reflect.DeepEqual(p.Traits, map[string]any{"plan": "free"}) || p.UserID != "" {
		t.Errorf("profile = %+v", p)
	}
}

func TestImportIdempotent(t *testing.T) {
	dir := t.TempDir()
	files := []string{fixture("events.ndjson"), fixture("users.csv"), fixture("track.jsonl.gz")}
	first, out, _, err := doImport(t, nil, append([]string{"--data", dir, "--create"}, files...)...)
	if err != nil {
		t.Fatalf("first import: %v\n%s", err, out)
	}
	if got, want := countsOf(first), (counts{Read: 21, Accepted: 13, Rejected: 8}); got != want {
		t.Fatalf("first import: %+v, want %+v\n%s", got, want, out)
	}
	second, out, _, err := doImport(t, nil, append([]string{"--data", dir, "--create"}, files...)...)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	// Everything stored the first time is a duplicate; what was rejected
	// is rejected again.
	if got, want := countsOf(second), (counts{Read: 21, Duplicates: 13, Rejected: 8}); got != want {
		t.Errorf("second import: %+v, want %+v\n%s", got, want, out)
	}
	if !matchLine(out, `  duplicates +13  already stored: skipped`) {
		t.Errorf("summary:\n%s", out)
	}

	// The same file compressed and elsewhere still yields the same ids.
	gz := filepath.Join(t.TempDir(), "events.ndjson.gz")
	writeGzip(t, gz, readFile(t, fixture("events.ndjson")))
	third, out, _, err := doImport(t, nil, "--data", dir, "--create", gz)
	if err != nil {
		t.Fatalf("gzip import: %v\n%s", err, out)
	}
	if got, want := countsOf(third), (counts{Read: 11, Duplicates: 6, Rejected: 5}); got != want {
		t.Errorf("gzip copy: %+v, want %+v\n%s", got, want, out)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeGzip(t *testing.T, path string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportGzip(t *testing.T) {
	dir := t.TempDir()
	sum, out, _, err := doImport(t, nil, "--data", dir, "--create", fixture("track.jsonl.gz"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got, want := countsOf(sum), (counts{Read: 4, Accepted: 3, Rejected: 1}); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if got, want := reasons(sum), []string{
		`1 "type" "bogus" is not one of identify, track, page, screen, group, alias @ testdata/import/track.jsonl.gz:4`,
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q", got)
	}
	srv, ws := openData(t, dir)
	// Two identical lines (CRLF-terminated) are two events: their line
	// numbers differ, so do their derived messageIds.
	num, _ := profileOf(t, srv, ws, "g1")
	evs := eventsOf(t, srv, ws, num)
	if len(evs) != 2 || evs[0].MessageID == evs[1].MessageID || evs[0].Name != "Played" {
		t.Errorf("g1 events = %+v", evs)
	}
	profileOf(t, srv, ws, "ga")
}

func TestImportUnreadableFiles(t *testing.T) {
	tmp := t.TempDir()
	// A gzip file cut short: the lines before the cut are imported.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for i := range 200 {
		fmt.Fprintf(zw, `{"type":"identify","userId":"c%d","traits":{"i":%d}}`+"\n", i, i)
	}
	zw.Close()
	cut := filepath.Join(tmp, "cut.ndjson.gz")
	os.WriteFile(cut, buf.Bytes()[:buf.Len()-20], 0o644)
	noID := filepath.Join(tmp, "noid.csv")
	os.WriteFile(noID, []byte("name,plan\nAda,pro\n"), 0o644)
	missing := filepath.Join(tmp, "missing.ndjson")

	dir := filepath.Join(tmp, "data")
	var stdout, stderr bytes.Buffer
	err := importCmd([]string{"--data", dir, "--create", cut, missing, noID, fixture("track.jsonl.gz")}, &stdout, &stderr)
	if err == nil || err.Error() != "3 of 4 files could not be read (see the summary)" {
		t.Fatalf("err = %v", err)
	}
	out := stdout.String()
	for _, want := range []string{
		"Imported 1 of 4 files",
		"Could not read 3 of 4 files (the import exits with an error):",
		"  read " + missing + ": no such file or directory",
		"  read " + noID + ` header: no "userId" or "anonymousId" column to identify the profiles (name the id column with --id-column)`,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// The lines before the one the cut broke are imported.
	m := regexp.MustCompile(`(?m)^  read ` + regexp.QuoteMeta(cut) + ` line (\d+): unexpected EOF$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary lacks the cut file's error:\n%s", out)
	}
	var broken int
	fmt.Sscan(m[1], &broken)
	if !matchLine(out, fmt.Sprintf(`  accepted +%d`, broken-1+3)) {
		t.Errorf("summary:\n%s", out)
	}
	srv, ws := openData(t, dir)
	profileOf(t, srv, ws, fmt.Sprintf("c%d", broken-2))
	profileOf(t, srv, ws, "g1")
}

func TestImportTooLargeLine(t *testing.T) {
	tmp := t.TempDir()
	path := filepath.Join(tmp, "big.ndjson")
	big := `{"type":"identify","userId":"big","traits":{"blob":"` + strings.Repeat("x", 40000) + `"}}`
	os.WriteFile(path, []byte(big+"\n"+`{"type":"identify","userId":"small"}`+"\n"), 0o644)
	dir := filepath.Join(tmp, "data")
	sum, out, _, err := doImport(t, nil, "--data", dir, "--create", path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := countsOf(sum), (counts{Read: 2, Accepted: 1, Rejected: 1}); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if got := reasons(sum); len(got) != 1 || got[0] != "1 message is over the 32768-byte limit @ "+path+":1" {
		t.Errorf("reasons = %q", got)
	}
	if !strings.Contains(out, path+":1: 40055 bytes") {
		t.Errorf("summary:\n%s", out)
	}
}

// servedStore serves a data directory's API through a wrapper.
func servedStore(t *testing.T, wrap func(http.Handler) http.Handler) (*server.Server, *ingest.Workspace, *httptest.Server) {
	t.Helper()
	srv, ws := openData(t, t.TempDir())
	ts := httptest.NewServer(wrap(srv.Handler()))
	t.Cleanup(ts.Close)
	return srv, ws, ts
}

// batchSize counts the messages of a gzip /v1/batch body, leaving the
// body readable.
func batchSize(t *testing.T, r *http.Request) int {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Errorf("body is not gzip: %v", err)
		return 0
	}
	var b struct{ Batch []json.RawMessage }
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		t.Errorf("body: %v", err)
	}
	return len(b.Batch)
}

func TestImportServerRetries429(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	var posts atomic.Int32
	srv, ws, ts := servedStore(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/batch" || r.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("%s %s (Content-Encoding %q)", r.Method, r.URL, r.Header.Get("Content-Encoding"))
			}
			if user, pass, ok := r.BasicAuth(); !ok || user != testWriteKey || pass != "" {
				t.Errorf("basic auth %q %q %v", user, pass, ok)
			}
			n := batchSize(t, r)
			if posts.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":"slow down"}`)
				return
			}
			mu.Lock()
			sizes = append(sizes, n)
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	})
	start := time.Now()
	sum, out, errOut, err := doImport(t, nil, "--server", ts.URL, "--write-key", testWriteKey, "--batch", "5",
		fixture("events.ndjson"), fixture("users.csv"))
	if err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, errOut)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("took %s: Retry-After: 1 was not honoured", d)
	}
	if got, want := countsOf(sum), (counts{Read: 17, Accepted: 10, Rejected: 7}); got != want {
		t.Errorf("counts = %+v, want %+v\n%s", got, want, out)
	}
	if sum.Retries != 1 || sum.LocalOnly != 3 {
		t.Errorf("Retries=%d LocalOnly=%d", sum.Retries, sum.LocalOnly)
	}
	if got, want := reasons(sum), []string{
		"2 line is not valid JSON @ testdata/import/events.ndjson:3",
		`3 message has neither "userId" nor "anonymousId" @ testdata/import/events.ndjson:4`,
		`1 track message has no "event" @ testdata/import/events.ndjson:5`,
		"1 row has a different number of fields than the header @ testdata/import/users.csv:7",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q, want %q", got, want)
	}
	if !strings.Contains(errOut, "HTTP 429 from "+ts.URL+"/v1/batch: slow down; retrying in 1s (attempt 2 of 10)") {
		t.Errorf("stderr:\n%s", errOut)
	}
	for _, pat := range []string{
		`  duplicates +0  already stored: skipped`,
		`  requests retried +1`,
	} {
		if !matchLine(out, pat) {
			t.Errorf("summary has no line matching %q:\n%s", pat, out)
		}
	}
	// Batches of at most 5 entries; lines rejected while reading are not sent.
	mu.Lock()
	if want := []int{4, 5, 4, 1}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("batch sizes = %v, want %v", sizes, want)
	}
	mu.Unlock()

	_, p := profileOf(t, srv, ws, "u4")
	if p.Traits["score"] != -1500.0 || p.Traits["vip"] != false {
		t.Errorf("u4 traits = %v", p.Traits)
	}
	// The server dead-lettered what it rejected.
	rejs, _ := store.Rejections(srv.St.DB(), ws.Num, 0, 100)
	if len(rejs) != 4 {
		t.Errorf("%d dead letters, want 4", len(rejs))
	}

	// Again: the server stores nothing twice and says how many it skipped.
	again, out, _, err := doImport(t, nil, "--server", ts.URL, "--write-key", testWriteKey, fixture("events.ndjson"), fixture("users.csv"))
	if err != nil {
		t.Fatalf("again: %v\n%s", err, out)
	}
	if got, want := countsOf(again), (counts{Read: 17, Duplicates: 10, Rejected: 7}); got != want {
		t.Errorf("again: counts = %+v, want %+v\n%s", got, want, out)
	}
	if !matchLine(out, `  duplicates +10  already stored: skipped`) {
		t.Errorf("again: summary has no duplicates line:\n%s", out)
	}
	n1, _ := profileOf(t, srv, ws, "u1")
	if evs := eventsOf(t, srv, ws, n1); len(evs) != 1 {
		t.Errorf("u1 has %d events after importing twice", len(evs))
	}
}

func TestImportServerRetries5xxAndSplitsRefusedBatches(t *testing.T) {
	var posts atomic.Int32
	_, _, ts := servedStore(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := batchSize(t, r)
			switch {
			case posts.Add(1) <= 2:
				http.Error(w, `{"error":"restarting"}`, http.StatusServiceUnavailable)
			case n > 2:
				// A server with a smaller batch limit than the contract's.
				http.Error(w, `{"error":"body too large"}`, http.StatusRequestEntityTooLarge)
			default:
				h.ServeHTTP(w, r)
			}
		})
	})
	sum, out, _, err := doImport(t, nil, "--server", ts.URL, "--write-key", testWriteKey, fixture("track.jsonl.gz"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got, want := countsOf(sum), (counts{Read: 4, Accepted: 3, Rejected: 1}); got != want || sum.Retries != 2 {
		t.Errorf("counts = %+v (retries %d), want %+v (retries 2)\n%s", got, sum.Retries, want, out)
	}
}

func TestImportServerErrors(t *testing.T) {
	_, _, ts := servedStore(t, func(h http.Handler) http.Handler { return h })
	sum, out, _, err := doImport(t, nil, "--server", ts.URL, "--write-key", "wk_wrong_key", fixture("events.ndjson"))
	if err == nil || !strings.Contains(err.Error(), "the server refused the write key (HTTP 401)") {
		t.Fatalf("err = %v", err)
	}
	if sum.NotSent() != 11 || !strings.Contains(out, "Stopped early: ") {
		t.Errorf("not sent %d:\n%s", sum.NotSent(), out)
	}

	// Nothing listens: connection errors are retried, then the import stops.
	addr := ts.Listener.Addr().String()
	ts.Close()
	sum, _, errOut, err := doImport(t, func(c *importConfig) { c.maxAttempts = 3 }, "--server", "http://"+addr, "--write-key", testWriteKey, fixture("track.jsonl.gz"))
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") || sum.Retries != 2 {
		t.Errorf("err = %v, retries %d", err, sum.Retries)
	}
	if !strings.Contains(errOut, "retrying in") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestImportArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"a.ndjson"}, "give --server URL or --data DIR"},
		{[]string{"--data", "d", "--server", "http://x", "a.ndjson"}, "not both"},
		{[]string{"--data", "d"}, "no files to import"},
		{[]string{"--data", "d", "a.json"}, "a.json: unknown file type"},
		{[]string{"--data", "d", "--batch", "0", "a.csv"}, "--batch 0"},
		{[]string{"--server", "http://x", "a.csv"}, "needs --write-key"},
		{[]string{"--server", "localhost:8080", "--write-key", "k", "a.csv"}, "want a URL"},
		{[]string{"--server", "http://x", "--write-key", "k", "--workspace", "w", "a.csv"}, "--workspace applies to --data"},
		{[]string{"--data", "d", "--write-key", "k", "a.csv"}, "--write-key applies to --server"},
	} {
		t.Setenv("COHORT_WRITE_KEY", "")
		_, err := parseImportArgs(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.err)
		}
	}
	// Flags may follow the files; "--" ends them.
	c, err := parseImportArgs([]string{"a.csv", "--data", "d", "b.ndjson.gz", "--batch", "7", "--", "--c.jsonl"}, io.Discard)
	if err != nil || c.data != "d" || c.batch != 7 || !reflect.DeepEqual(c.files, []string{"a.csv", "b.ndjson.gz", "--c.jsonl"}) {
		t.Errorf("parsed %+v, %v", c, err)
	}
}

func TestCSVValue(t *testing.T) {
	for in, want := range map[string]any{
		"42": json.Number("42"), "-0.5": json.Number("-0.5"), "1e3": json.Number("1e3"), "0": json.Number("0"),
		"true": true, "FALSE": false, "True": true,
		"007": "007", "1.": "1.", ".5": ".5", "+1": "+1", "1e999": "1e999", "0x10": "0x10",
		"NaN": "NaN", "Inf": "Inf", "12abc": "12abc", "yes": "yes", "1,000": "1,000", "-": "-",
	} {
		if got := csvValue(in); got != want {
			t.Errorf("csvValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestWithMessageID(t *testing.T) {
	id := importMessageID("f.ndjson", 3, []byte(`{}`))
	for _, tc := range []struct{ in, want string }{
		{`{"type":"track","messageId":"m1"}`, `{"type":"track","messageId":"m1"}`},
		{`{"type":"track","messageId":7}`, `{"type":"track","messageId":7}`},
		{`{}`, `{"messageId":"` + id + `"}`},
		{`[1]`, `[1]`},
	} {
		if got := string(withMessageID([]byte(tc.in), "f.ndjson", 3)); got != tc.want {
			t.Errorf("withMessageID(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{`{"type":"track"}`, `{"type":"track","messageId":null}`, `{"type":"track","messageId":""}`} {
		got := withMessageID([]byte(in), "f.ndjson", 3)
		var m struct{ MessageID string }
		json.Unmarshal(got, &m)
		if !strings.HasPrefix(m.MessageID, "import-") || len(m.MessageID) != len("import-")+32 {
			t.Errorf("withMessageID(%s) = %s", in, got)
		}
	}
	a := importMessageID("f.ndjson", 3, []byte(`{"a":1}`))
	for _, b := range []string{importMessageID("g.ndjson", 3, []byte(`{"a":1}`)), importMessageID("f.ndjson", 4, []byte(`{"a":1}`)), importMessageID("f.ndjson", 3, []byte(`{"a":2}`))} {
		if a == b {
			t.Errorf("ids collide: %s", a)
		}
	}
}

func TestLineReader(t *testing.T) {
	in := "a\r\n\nbb\n" + strings.Repeat("x", 100) + "\r\nlast"
	lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader(in), 16), max: 10}
	type line struct {
		s    string
		size int
		long bool
	}
	var got []line
	for {
		l, size, long, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line{string(l), size, long})
	}
	want := []line{{"a", 1, false}, {"", 0, false}, {"bb", 2, false}, {strings.Repeat("x", 10), 100, true}, {"last", 4, false}}
	if !reflect.DeepEqual(got, want) || lr.n != 5 {
		t.Errorf("lines = %v (n=%d), want %v", got, lr.n, want)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0": 0, "Wed, 01 May 2024 12:00:30 GMT": 30 * time.Second, "Wed, 01 May 2024 11:00:00 GMT": 0,
	} {
		if got, ok := retryAfter(in, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %s %v, want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(in, now); ok {
			t.Errorf("retryAfter(%q) ok", in)
		}
	}
}

func TestProgressLines(t *testing.T) {
	var buf syncBuffer
	p := newProgress(&buf, 200, time.Millisecond)
	p.start()
	p.bytes.Add(100)
	p.msgs.Add(7)
	p.rejected.Add(2)
	p.setFile("a.ndjson")
	time.Sleep(20 * time.Millisecond)
	p.finish()
	if !strings.Contains(buf.String(), "cohort import:  50%  100 B / 200 B  7 messages") ||
		!strings.Contains(buf.String(), "2 rejected  (a.ndjson)\n") {
		t.Errorf("progress:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestImportInterrupted(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cfg, err := parseImportArgs([]string{"--data", t.TempDir(), "--create", fixture("events.ndjson")}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := runImport(ctx, cfg, &stdout, &stderr)
	if err == nil || err.Error() != "import stopped: interrupted" || sum.FilesRead != 0 {
		t.Errorf("err = %v, files read %d", err, sum.FilesRead)
	}
	if !strings.Contains(stdout.String(), "Stopped early: interrupted\nImporting the same files again is safe") {
		t.Errorf("summary:\n%s", stdout.String())
	}
}
