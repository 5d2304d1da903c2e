//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The keys every test server gets from its environment.
const (
	writeKey = "wk_e2e_write_key_0001"
	apiKey   = "ak_e2e_api_key_0001"
	adminKey = "adm_e2e_admin_key_0001"
)

// Bounds on how long the server may take.
const (
	startTimeout = 30 * time.Second // from exec to GET /healthz == 200
	stopTimeout  = 30 * time.Second // from SIGTERM to exit (the server drains for at most 30 s)
	killTimeout  = 10 * time.Second // from SIGKILL to exit
)

// cohortBin is the binary TestMain built.
var cohortBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cohort-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cohortBin = filepath.Join(dir, "cohort")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// go test puts its own go first on PATH.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", cohortBin, "github.com/cohortdb/cohort/cmd/cohort")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the cohort binary failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// syncBuffer collects a process's output; it is written by exec's copying
// goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is one running `cohort serve` process.
type server struct {
	name    string // for messages: "server #2 (pid 1234)"
	dataDir string
	base    string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
	logs    *syncBuffer
	client  *http.Client

	done    chan struct{} // closed once the process has exited
	waitErr error         // cmd.Wait's answer, set before done is closed
}

var serverCount struct {
	sync.Mutex
	n int
}

// startServer starts the binary on a free 127.0.0.1 port with dataDir and
// the test keys (and extra arguments, such as --config), and returns once
// GET /healthz answers 200. The process is killed at the end of the test if
// it is still running then.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, portTaken, err := tryStartServer(t, dataDir, extra...)
		if err == nil {
			return s
		}
		lastErr = err
		if !portTaken {
			break
		}
	}
	t.Fatalf("starting the server: %v", lastErr)
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tryStartServer(t *testing.T, dataDir string, extra ...string) (s *server, portTaken bool, err error) {
	t.Helper()
	s, err = launchServer(t, dataDir, extra...)
	if err != nil {
		return nil, false, err
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if s.healthy() {
			return s, false, nil
		}
		select {
		case <-s.done:
			out := s.logs.String()
			return nil, strings.Contains(out, "address already in use"),
				fmt.Errorf("%s exited before it was healthy: %v\n%s", s.name, s.waitErr, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, false, fmt.Errorf("%s: GET /healthz did not answer 200 within %s", s.name, startTimeout)
		}
	}
}

// launchServer starts the binary on a free 127.0.0.1 port with dataDir, the
// test keys and extra arguments, without waiting for it; the process is
// killed at the end of the test if it is still running then.
func launchServer(t *testing.T, dataDir string, extra ...string) (*server, error) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	logs := &syncBuffer{}
	cmd := exec.Command(cohortBin, append([]string{"serve", "--http", addr, "--data", dataDir}, extra...)...)
	// Later entries win over the inherited ones.
	cmd.Env = append(os.Environ(),
		"COHORT_WRITE_KEY="+writeKey,
		"COHORT_API_KEY="+apiKey,
		"COHORT_ADMIN_KEY="+adminKey,
	)
	cmd.Stdout = logs
	cmd.Stderr = logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	serverCount.Lock()
	serverCount.n++
	n := serverCount.n
	serverCount.Unlock()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	s := &server{
		name:    fmt.Sprintf("server #%d (pid %d, %s)", n, cmd.Process.Pid, addr),
		dataDir: dataDir,
		base:    "http://" + addr,
		cmd:     cmd,
		logs:    logs,
		client:  &http.Client{Transport: tr, Timeout: 15 * time.Second},
		done:    make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if !s.exited() {
			s.cmd.Process.Kill()
			select {
			case <-s.done:
			case <-time.After(killTimeout):
				t.Errorf("%s did not exit within %s of SIGKILL", s.name, killTimeout)
			}
		}
		tr.CloseIdleConnections()
		if t.Failed() {
			t.Logf("output of %s:\n%s", s.name, s.logs)
		}
	})
	return s, nil
}

func (s *server) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/healthz", nil)
	res, err := s.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// signal sends sig, failing the test if the process has already exited by
// itself.
func (s *server) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if s.exited() {
		t.Fatalf("%s exited by itself before %v: %v", s.name, sig, s.waitErr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: sending %v: %v", s.name, sig, err)
	}
}

// waitExit waits at most d for the process to exit and returns cmd.Wait's
// answer.
func (s *server) waitExit(t *testing.T, d time.Duration, after string) error {
	t.Helper()
	select {
	case <-s.done:
		return s.waitErr
	case <-time.After(d):
		s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("%s did not exit within %s of %s", s.name, d, after)
		return nil
	}
}

// stop sends SIGTERM and expects the server to drain and exit 0.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGTERM)
	s.expectCleanExit(t)
}

// expectCleanExit waits for the exit that follows a SIGTERM and expects
// status 0.
func (s *server) expectCleanExit(t *testing.T) {
	t.Helper()
	if err := s.waitExit(t, stopTimeout, "SIGTERM"); err != nil {
		t.Fatalf("%s after SIGTERM: %v, want exit status 0; output:\n%s", s.name, err, s.logs)
	}
	s.client.CloseIdleConnections()
}

// kill sends SIGKILL and waits for the process to die of it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGKILL)
	s.waitKilled(t)
}

// waitKilled waits for the process to die of the SIGKILL it was sent.
func (s *server) waitKilled(t *testing.T) {
	t.Helper()
	s.waitExit(t, killTimeout, "SIGKILL")
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: %v, want death by SIGKILL", s.name, s.cmd.ProcessState)
	}
	s.client.CloseIdleConnections()
}

// post sends body to a /v1 route with the write key (HTTP Basic, empty
// password), and returns the status and body of the answer.
func (s *server) post(ctx context.Context, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(writeKey, "")
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err
	}
	return res.StatusCode, b, nil
}

// ingestAnswer is the answer of a /v1 route.
type ingestAnswer struct {
	Success  *bool             `json:"success"`
	Rejected []json.RawMessage `json:"rejected"`
	Error    string            `json:"error"`
}

// acknowledged tells whether a /v1 answer acknowledges every message.
func acknowledged(status int, body []byte) bool {
	var a ingestAnswer
	return status == http.StatusOK && json.Unmarshal(body, &a) == nil && a.Success != nil && *a.Success && len(a.Rejected) == 0
}

// get sends GET path with the api key and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the answer: %v", path, err)
	}
	return res.StatusCode, b
}

// getJSON sends GET path with the api key, expects 200 and decodes the
// answer into v.
func (s *server) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	status, body := s.get(t, path)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// userAnswer is the answer of GET /api/users/{id}.
type userAnswer struct {
	ID     string         `json:"id"`
	IDs    []string       `json:"ids"`
	Traits map[string]any `json:"traits"`
}

// user reads a profile; found is false on 404.
func (s *server) user(t *testing.T, id string) (u userAnswer, found bool) {
	t.Helper()
	path := "/api/users/" + url.PathEscape(id)
	status, body := s.get(t, path)
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return u, false
	default:
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return u, true
}

// storedEvent is one event of GET /api/users/{id}/events.
type storedEvent struct {
	Event      string         `json:"event"`
	Timestamp  time.Time      `json:"timestamp"`
	MessageID  string         `json:"messageId"`
	Properties map[string]any `json:"properties"`
}

// events reads all of a profile's events; found is false on 404.
func (s *server) events(t *testing.T, id string) (evs []storedEvent, found bool) {
	t.Helper()
	path := "/api/users/" + url.PathEscape(id) + "/events?limit=100000"
	status, body := s.get(t, path)
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, false
	default:
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var a struct {
		Events    []storedEvent `json:"events"`
		Truncated bool          `json:"truncated"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	if a.Truncated {
		t.Fatalf("GET %s: truncated at %d events", path, len(a.Events))
	}
	return a.Events, true
}

// jsonValue decodes a JSON literal, for comparing with decoded answers.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON literal in the test: %v: %s", err, s)
	}
	return v
}

// mustJSON encodes v compactly, for messages.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}
