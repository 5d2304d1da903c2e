package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// genStats reads the bad-line count from gen's summary on stderr.
func genBad(t *testing.T, stderr string) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+) deliberately bad lines`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("gen summary has no bad-line count: %q", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestGenImports: what gen writes imports with no rejections but its
// deliberately bad lines, into a new data directory, through `import -`
// as well as from files; the same flags give the same bytes.
func TestGenImports(t *testing.T) {
	args := []string{"gen", "--profiles", "400", "--seed", "3", "--now", "2026-12-01T00:00:00Z"}
	var out1, out2, errOut bytes.Buffer
	if code := run(args, &out1, &errOut); code != 0 {
		t.Fatalf("gen exited %d: %s", code, errOut.String())
	}
	bad := genBad(t, errOut.String())
	if code := run(args, &out2, &bytes.Buffer{}); code != 0 || !bytes.Equal(out1.Bytes(), out2.Bytes()) {
		t.Fatalf("a second gen with the same flags wrote other bytes (exit %d)", code)
	}
	lines := bytes.Count(out1.Bytes(), []byte("\n"))
	if lines < 400*20 || bad < 3 {
		t.Fatalf("gen wrote %d lines, %d bad: want at least 8000 and 3", lines, bad)
	}

	// Streamed into import -.
	sum, out, _, err := doImport(t, func(c *importConfig) { c.stdin = bytes.NewReader(out1.Bytes()) },
		"--data", filepath.Join(t.TempDir(), "data"), "--create", "-")
	if err != nil {
		t.Fatalf("import -: %v\n%s", err, out)
	}
	if sum.Read != lines || sum.Rejected != bad || sum.Accepted != lines-bad {
		t.Errorf("import -: read %d accepted %d rejected %d; want %d, %d, %d\n%s", sum.Read, sum.Accepted, sum.Rejected, lines, lines-bad, bad, out)
	}
	if !strings.Contains(out, " stdin:") {
		t.Errorf("import -: the summary does not locate rejections in stdin:\n%s", out)
	}

	// Files: the events and the CSV profiles.
	dir := t.TempDir()
	errOut.Reset()
	if code := run(append(args[:len(args):len(args)], "--out", dir), &bytes.Buffer{}, &errOut); code != 0 {
		t.Fatalf("gen --out exited %d: %s", code, errOut.String())
	}
	events, err := os.ReadFile(filepath.Join(dir, "events.ndjson"))
	if err != nil || !bytes.Equal(events, out1.Bytes()) {
		t.Fatalf("events.ndjson differs from gen's stdout (%v)", err)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "profiles.csv"))
	rows := bytes.Count(csv, []byte("\n")) - 1
	if !strings.Contains(errOut.String(), strconv.Itoa(rows)+" CSV profiles") {
		t.Errorf("gen summary %q does not count %d CSV profiles", errOut.String(), rows)
	}
	sum, out, _, err = doImport(t, nil, "--data", filepath.Join(t.TempDir(), "data"), "--create",
		filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "profiles.csv"))
	if err != nil {
		t.Fatalf("import files: %v\n%s", err, out)
	}
	if sum.Read != lines+rows || sum.Rejected != bad {
		t.Errorf("import files: read %d rejected %d; want %d and %d\n%s", sum.Read, sum.Rejected, lines+rows, bad, out)
	}
}

func TestGenFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--profiles", "0"}, "profiles: 0, want at least 1"},
		{[]string{"--events", "-5"}, "events: -5 must not be negative"},
		{[]string{"--now", "yesterday"}, `--now "yesterday": want an RFC 3339 time`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		if code := run(append([]string{"gen"}, tc.args...), &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("gen %q: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestImportDataMustBeAStore: --data refuses a directory that holds no
// store, whether it exists or not, unless --create is given.
func TestImportDataMustBeAStore(t *testing.T) {
	empty := t.TempDir()
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), empty} {
		_, _, _, err := doImport(t, nil, "--data", dir, fixture("events.ndjson"))
		if err == nil || !strings.Contains(err.Error(), "is not a Cohort data directory (give --create") {
			t.Errorf("--data %s: err = %v", dir, err)
		}
		if dir != empty {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("--data %s was created: %v", dir, err)
			}
		}
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("the empty directory got %d entries", len(ents))
	}
	if _, _, _, err := doImport(t, nil, "--data", empty, "--create", fixture("events.ndjson")); err != nil {
		t.Fatalf("--create: %v", err)
	}
	if _, _, _, err := doImport(t, nil, "--data", empty, fixture("events.ndjson")); err != nil {
		t.Fatalf("an existing store without --create: %v", err)
	}
}
