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
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README walkthrough uses curl, which is not installed (.ci/run installs it)")
	}
	blocks := readmeBlocks(t, "<!-- walkthrough", "<!-- /walkthrough -->")
	if len(blocks) != 4 {
		t.Fatalf("the walkthrough has %d shell blocks, want 4 (serve, send, segment, changes)", len(blocks))
	}
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	for i := range blocks {
		blocks[i] = strings.ReplaceAll(blocks[i], "8080", port)
	}

	// Block 1: build, keys, serve.
	env := os.Environ()
	var serveLine string
	for _, line := range strings.Split(blocks[0], "\n") {
		switch {
		case line == "go build -o cohort ./cmd/cohort":
			copyFile(t, cohortBin, filepath.Join(dir, "cohort"))
		case strings.HasPrefix(line, "export "):
			env = append(env, strings.Fields(strings.TrimPrefix(line, "export "))...)
		case strings.HasPrefix(line, "./cohort serve "):
			serveLine = line
		case strings.TrimSpace(line) != "":
			t.Fatalf("the walkthrough's first block has a line this test does not know: %q", line)
		}
	}
	if serveLine == "" {
		t.Fatal("the walkthrough's first block starts no server")
	}
	logs := &syncBuffer{}
	serve := exec.Command("bash", "-c", "exec "+serveLine)
	serve.Dir, serve.Env, serve.Stdout, serve.Stderr = dir, env, logs, logs
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
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
	}()
	waitHealthy(t, "http://127.0.0.1:"+port+"/healthz", exited, logs)

	// The blocks in between: each must succeed.
	var out strings.Builder
	for i, b := range blocks[1 : len(blocks)-1] {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", b)
		cmd.Dir, cmd.Env = dir, env
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("walkthrough block %d failed: %v\n%s\n--- output:\n%s\n--- server log:\n%s", i+2, err, b, got, logs.String())
		}
		out.Write(got)
		out.WriteString("\n")
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

	// The last block: the change stream, read until u1's enter.
	last := blocks[len(blocks)-1]
	if !strings.Contains(last, "curl -N") {
		t.Fatalf("the walkthrough's last block is not the change stream: %q", last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream := exec.CommandContext(ctx, "bash", "-c", "exec "+last)
	stream.Dir, stream.Env = dir, env
	stdout, err := stream.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	found := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"segment":"cart-electronics","user":"u1","change":"enter"`) && strings.Contains(sc.Text(), `"reason":"build"`) {
			found = true
			break
		}
	}
	cancel()
	stream.Wait()
	if !found {
		t.Fatalf("the change stream showed no enter of u1 (reason build) within 15 s:\n%s", strings.Join(seen, "\n"))
	}
	if len(seen) < 3 || seen[len(seen)-3] != "id: 1" || seen[len(seen)-2] != "event: change" {
		t.Errorf("the stream's first change is not as the README shows it (id: 1, event: change, data: ...):\n%s", strings.Join(seen, "\n"))
	}
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
