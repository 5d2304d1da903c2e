//go:build unix

package e2e

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestREADMEWalkthrough follows the README's walkthrough literally: the
// shell blocks between its walkthrough markers, in order, in an empty
// directory, against the built binary. Two things differ from a user's
// run, both mechanical: "go build -o cohort ./cmd/cohort" copies the binary
// TestMain built, and port 8080 becomes a free port. The walkthrough must
// end as the README promises: u1 a member, and its enter on the stream.
func TestREADMEWalkthrough(t *testing.T) {
	r := newREADMERun(t)
	blocks := readmeBlocks(t, "<!-- walkthrough", "<!-- /walkthrough -->")
	if len(blocks) != 4 {
		t.Fatalf("the walkthrough has %d shell blocks, want 4 (serve, send, segment, changes)", len(blocks))
	}
	var out strings.Builder
	for _, b := range blocks[:len(blocks)-1] {
		out.WriteString(r.run(b) + "\n")
	}
	for _, want := range []string{
		`"traits":{"city":"London","plan":"pro"}`,
		`"id":"cart-electronics"`,
		`{"members":["u1"],"next_cursor":null}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walkthrough's output has no %s:\n%s", want, out.String())
		}
	}
	seen := r.stream(blocks[len(blocks)-1], func(line string) bool {
		return strings.Contains(line, `"segment":"cart-electronics","user":"u1","change":"enter"`) && strings.Contains(line, `"reason":"build"`)
	})
	if len(seen) < 3 || seen[len(seen)-3] != "id: 1" || seen[len(seen)-2] != "event: change" {
		t.Errorf("the stream's first change is not as the README shows it (id: 1, event: change, data: ...):\n%s", strings.Join(seen, "\n"))
	}
}

// TestREADMEDemo follows the README's one-minute demo the same way, with
// the walkthrough's binary and keys: the import rejects only the
// deliberately bad lines, the three segments have members, and the stream
// shows an enter of each.
func TestREADMEDemo(t *testing.T) {
	r := newREADMERun(t)
	blocks := readmeBlocks(t, "<!-- demo", "<!-- /demo -->")
	if len(blocks) != 4 {
		t.Fatalf("the demo has %d shell blocks, want 4 (gen and import, serve, segments, changes)", len(blocks))
	}
	imported := r.run(blocks[0])
	if !matchesLine(imported, `  rejected +41`) || !matchesLine(imported, `  accepted +210000`) {
		t.Errorf("the demo import is not as the README says (210,000 messages, 41 rejected):\n%s", imported)
	}
	r.run(blocks[1])
	segs := r.run(blocks[2])
	for _, id := range []string{"london-paid", "cart-abandoners", "kpop-fans"} {
		if !strings.Contains(segs, `{"id":"`+id+`"`) {
			t.Errorf("segment %s was not created:\n%s", id, segs)
		}
	}
	if strings.Contains(segs, `"size":0,`) {
		t.Errorf("a demo segment is empty:\n%s", segs)
	}
	entered := map[string]bool{}
	r.stream(blocks[3], func(line string) bool {
		for _, id := range []string{"london-paid", "cart-abandoners", "kpop-fans"} {
			if strings.Contains(line, `"segment":"`+id+`"`) && strings.Contains(line, `"change":"enter"`) {
				entered[id] = true
			}
		}
		return len(entered) == 3
	})
}

// readmeRun is one user following README blocks in one directory.
type readmeRun struct {
	t    *testing.T
	dir  string
	env  []string
	port string
}

// newREADMERun starts in an empty directory holding the built binary as
// ./cohort, with the walkthrough's exported keys.
func newREADMERun(t *testing.T) *readmeRun {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README uses curl, which is not installed (.ci/run installs it)")
	}
	r := &readmeRun{t: t, dir: t.TempDir(), env: os.Environ(), port: strconv.Itoa(freePort(t))}
	copyFile(t, cohortBin, filepath.Join(r.dir, "cohort"))
	first := readmeBlocks(t, "<!-- walkthrough", "<!-- /walkthrough -->")[0]
	for _, line := range strings.Split(first, "\n") {
		if strings.HasPrefix(line, "export ") {
			r.env = append(r.env, strings.Fields(strings.TrimPrefix(line, "export "))...)
		}
	}
	return r
}

// run runs one block (port 8080 replaced) and returns its output. A block
// of set-up lines is interpreted: the build (the binary is already there),
// exports, and "./cohort serve", which starts a server until the test ends.
func (r *readmeRun) run(block string) string {
	t := r.t
	t.Helper()
	block = strings.ReplaceAll(block, "8080", r.port)
	setup := true
	for _, line := range strings.Split(block, "\n") {
		if line != "go build -o cohort ./cmd/cohort" && !strings.HasPrefix(line, "export ") && !strings.HasPrefix(line, "./cohort serve ") {
			setup = false
		}
	}
	if !setup {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
		cmd.Dir, cmd.Env = r.dir, r.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README block failed: %v\n%s\n--- output:\n%s", err, block, out)
		}
		return string(out)
	}
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "export "):
			r.env = append(r.env, strings.Fields(strings.TrimPrefix(line, "export "))...)
		case strings.HasPrefix(line, "./cohort serve "):
			r.serve(line)
		}
	}
	return ""
}

// serve starts line in the background and waits until the server is
// healthy; it is stopped with SIGTERM when the test ends.
func (r *readmeRun) serve(line string) {
	t := r.t
	logs := &syncBuffer{}
	serve := exec.Command("bash", "-c", "exec "+line)
	serve.Dir, serve.Env, serve.Stdout, serve.Stderr = r.dir, r.env, logs, logs
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the server exited with %v after SIGTERM\n%s", err, logs.String())
			}
		case <-time.After(stopTimeout):
			syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Errorf("the server did not stop within %s of SIGTERM", stopTimeout)
		}
	})
	waitHealthy(t, "http://127.0.0.1:"+r.port+"/healthz", exited, logs)
}

// stream runs a block that does not end (curl -N) and reads its lines
// until done says so, failing after 15 s; it returns the lines read.
func (r *readmeRun) stream(block string, done func(line string) bool) []string {
	t := r.t
	t.Helper()
	if !strings.Contains(block, "curl -N") {
		t.Fatalf("not a change-stream block: %q", block)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "exec "+strings.ReplaceAll(block, "8080", r.port))
	cmd.Dir, cmd.Env = r.dir, r.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.HasPrefix(sc.Text(), "data: ") && done(sc.Text()) {
			return seen
		}
	}
	t.Fatalf("the change stream did not show what the README promises within 15 s:\n%s", strings.Join(seen, "\n"))
	return nil
}

func matchesLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern + `$`).MatchString(text)
}

// readmeBlocks returns the ```sh blocks of README.md between two markers.
func readmeBlocks(t *testing.T, from, to string) []string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), from)
	section, _, ok2 := strings.Cut(rest, to)
	if !ok || !ok2 {
		t.Fatalf("README.md has no section between %q and %q", from, to)
	}
	var blocks []string
	for {
		_, after, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return blocks
		}
		block, rest, ok := strings.Cut(after, "```")
		if !ok {
			t.Fatal("README.md: a ```sh block is not closed")
		}
		blocks = append(blocks, strings.TrimSpace(block))
		section = rest
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// waitHealthy polls url until it answers 200, failing if the process
// exits first or startTimeout passes.
func waitHealthy(t *testing.T, url string, exited <-chan error, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			t.Fatalf("the server exited before it was healthy: %v\n%s", err, logs.String())
		default:
		}
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		} else if !errors.Is(err, syscall.ECONNREFUSED) && !strings.Contains(err.Error(), "connection refused") {
			t.Logf("healthz: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not healthy within %s\n%s", startTimeout, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}
