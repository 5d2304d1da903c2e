package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBenchWorkloadShape(t *testing.T) {
	w, err := newWorkload(workloadSpec{Batch: 100, EventBytes: 400, Users: 1000, Seed: 7, RunID: "0badcafe", Now: time.Now(), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if w.meanEvent < 360 || w.meanEvent > 440 {
		t.Errorf("mean event is %.0f bytes, want about 400", w.meanEvent)
	}
	a := w.fill(nil, 3, 0x1000)
	b := w.fill(nil, 3, 0x2000)
	var body struct {
		Batch []map[string]any `json:"batch"`
	}
	if err := json.Unmarshal(a, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Batch) != 100 {
		t.Fatalf("%d messages, want 100", len(body.Batch))
	}
	ids := map[string]bool{}
	for i, m := range body.Batch {
		id, _ := m["messageId"].(string)
		if want := "bench-0badcafe-"; !strings.HasPrefix(id, want) || len(id) != len(want)+seqDigits {
			t.Fatalf("message %d: messageId %q", i, id)
		}
		ids[id] = true
		for _, k := range []string{"userId", "event", "timestamp", "sentAt", "properties"} {
			if m[k] == nil {
				t.Fatalf("message %d lacks %q: %v", i, k, m)
			}
		}
	}
	if len(ids) != 100 || !strings.Contains(string(a), "bench-0badcafe-0000000000001063") {
		t.Fatalf("messageIds not numbered from the sequence: %d distinct", len(ids))
	}
	if bytes.Equal(a, b) || len(a) != len(b) {
		t.Fatal("the same template with another sequence should differ only in the messageIds")
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 500, 90: 900, 99: 990, 99.9: 999, 100: 1000} {
		if got := percentile(lat, p); got != want*time.Millisecond {
			t.Errorf("p%g = %s, want %dms", p, got, want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("percentile of nothing should be 0")
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--url", "http://127.0.0.1:1"},
		{"--write-key", "wk_12345678"},
		{"--duration", "0s"},
		{"--batch", "0"},
		{"--rate", "-1"},
		{"extra"},
		{"--url", "http://127.0.0.1:1", "--write-key", "wk_12345678", "--server-gomaxprocs", "1"},
		{"--in-process", "--server-bin", "/bin/true"},
		{"--server-gomaxprocs", "-1"},
	} {
		if _, err := parseIngestFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// TestBenchIngestShortRun runs the whole command for about a second
// against a real child server (and once in-process), closed and open loop,
// and checks that the report's numbers agree: what the clients had
// acknowledged is what the server says it stored.
func TestBenchIngestShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server")
	}
	bin := filepath.Join(t.TempDir(), "cohort")
	build := exec.Command("go", "build", "-o", bin, "github.com/cohortdb/cohort/cmd/cohort")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}
	for _, extra := range [][]string{
		{"--server-bin", bin},
		{"--server-bin", bin, "--rate", "5000", "--server-gomaxprocs", "1"},
		{"--in-process", "--rate", "5000"},
		{"--server-bin", bin, "--rate", "5000", "--query-loop", "--query-time", "20ms"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"ingest", "--duration", "1s", "--warmup", "200ms", "--concurrency", "4", "--batch", "20"}, extra...)
		if err := benchCmd(args, &out, &errOut); err != nil {
			t.Fatalf("%q: %v\n%s\n%s", args, err, out.String(), errOut.String())
		}
		report := out.String()
		for _, want := range []string{"events/s", "p99.9", "errors       none", "0 duplicate, 0 rejected", "µs of CPU per accepted event"} {
			if !strings.Contains(report, want) {
				t.Errorf("%q: output lacks %q:\n%s", args, want, report)
			}
		}
		if slices.Contains(extra, "--server-gomaxprocs") && !strings.Contains(report, "GOMAXPROCS=1") {
			t.Errorf("%q: the report does not say the server ran with GOMAXPROCS=1:\n%s", args, report)
		}
		if slices.Contains(extra, "--query-loop") {
			q := regexp.MustCompile(`queries +(\d+) completed in the window`).FindStringSubmatch(report)
			if q == nil || count(t, q[1]) == 0 || !strings.Contains(report, "phase        the load alone") || !strings.Contains(report, "query moved  ingest p50 by") {
				t.Errorf("%q: no query loop in the report:\n%s", args, report)
			}
		}
		m := regexp.MustCompile(`stored +([\d,]+) messages acknowledged to the clients; the server accepted ([\d,]+) \(/metrics\) and holds ([\d,]+) events`).FindStringSubmatch(report)
		if m == nil {
			t.Fatalf("%q: no stored line:\n%s", args, report)
		}
		acked, accepted, held := count(t, m[1]), count(t, m[2]), count(t, m[3])
		if acked < 1000 || acked != accepted || acked != held {
			t.Errorf("%q: %d acknowledged, %d accepted, %d held: want the same, at least 1,000", args, acked, accepted, held)
		}
		ev := regexp.MustCompile(`events/s +([\d,]+) +\(([\d,]+) accepted`).FindStringSubmatch(report)
		if ev == nil || count(t, ev[1]) == 0 || count(t, ev[2]) > acked {
			t.Errorf("%q: events/s line %q: want a rate above 0 and no more in the window than in the run (%d)", args, ev, acked)
		}
	}
}

// count parses a number printed with thousands separators.
func count(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestBenchRestartShortRun runs `cohort-bench restart` small against the
// real binary: it kills the server mid-ingest, starts it again and finds
// every acknowledged message stored.
func TestBenchRestartShortRun(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cohort")
	build := exec.Command("go", "build", "-o", bin, "github.com/cohortdb/cohort/cmd/cohort")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}
	var out, errOut bytes.Buffer
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"restart", "--profiles", "2000", "--events", "30000", "--kill-after", "0.7", "--clients", "4", "--server-bin", bin, "--data", data}
	if err := benchCmd(args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s\n%s", args, err, out.String(), errOut.String())
	}
	m := regexp.MustCompile(`acknowledged messages sent again: (\d+) of (\d+) ignored as duplicates`).FindStringSubmatch(out.String())
	if m == nil || m[1] != m[2] || count(t, m[2]) < 10000 {
		t.Fatalf("the report does not show every acknowledged message stored:\n%s", out.String())
	}
	if !regexp.MustCompile(`SIGKILL, then start: /healthz 200 after \d`).MatchString(out.String()) {
		t.Fatalf("no restart time in the report:\n%s", out.String())
	}
	held := regexp.MustCompile(`events held after the restart: (\d+) \(/api/schema\); (\d+) acknowledged`).FindStringSubmatch(out.String())
	if held == nil || count(t, held[1]) < count(t, held[2]) {
		t.Fatalf("the report does not show the acknowledged events held:\n%s", out.String())
	}
	if !regexp.MustCompile(`RSS anonymous +\d+\.\d MB +\(empty \d+\.\d MB\)`).MatchString(out.String()) {
		t.Fatalf("no memory after a collection in the report:\n%s", out.String())
	}

	// --reopen starts on the kept directory: the same events, no load.
	out.Reset()
	args = []string{"restart", "--profiles", "2000", "--reopen", "--server-bin", bin, "--data", data}
	if err := benchCmd(args, &out, &errOut); err != nil {
		t.Fatalf("%q: %v\n%s\n%s", args, err, out.String(), errOut.String())
	}
	again := regexp.MustCompile(`events held after the restart: (\d+) `).FindStringSubmatch(out.String())
	if again == nil || again[1] != held[1] || !strings.Contains(out.String(), "reopened "+data) {
		t.Fatalf("reopened, the report does not show the %s events held before:\n%s", held[1], out.String())
	}
}

// TestAckedSetSample checks the batches kept to send again past
// keepAllEvents: every sampleEvery-th acknowledged and the last
// sampleTail, each once.
func TestAckedSetSample(t *testing.T) {
	for _, n := range []int{10, sampleTail, sampleTail + 1, 3*sampleEvery + 7, 5 * sampleTail} {
		a := &ackedSet{sampled: true}
		for i := 1; i <= n; i++ {
			a.add(batch{msgs: i})
		}
		got := map[int]bool{}
		for _, b := range a.batches() {
			if got[b.msgs] {
				t.Fatalf("n=%d: batch %d kept twice", n, b.msgs)
			}
			got[b.msgs] = true
		}
		others := 0 // the batches not sampled, newest last
		for i := n; i >= 1; i-- {
			want := i%sampleEvery == 0
			if !want {
				others++
				want = others <= sampleTail
			}
			if got[i] != want {
				t.Fatalf("n=%d: batch %d kept %v, want %v", n, i, got[i], want)
			}
		}
	}
	a := &ackedSet{}
	for i := 1; i <= 3*sampleEvery; i++ {
		a.add(batch{msgs: i})
	}
	if len(a.batches()) != 3*sampleEvery {
		t.Fatalf("unsampled: kept %d of %d", len(a.batches()), 3*sampleEvery)
	}
}
