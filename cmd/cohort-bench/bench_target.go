package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

// The server a `cohort-bench ingest` run measures: by default the real
// `cohort serve` in a child process, so that the load generator and the
// server are two processes talking over loopback HTTP as a user's clients
// and server are; --url for one already running elsewhere; --in-process
// for a server inside the benchmark's process (one CPU profile holds both).

// target is the server of a run.
type target struct {
	base     string // http://127.0.0.1:PORT
	writeKey string
	apiKey   string // "" with --url: the checks through /api are skipped
	adminKey string // the child's admin key ("" otherwise): /debug/pprof
	desc     string // for the report
	kind     targetKind
	fresh    bool   // a new, empty store: every stored message is this run's
	version  string // the child's `cohort version`
	warnings func() []string
	stop     func() error
	child    *childServer // the child process, when kind is targetChild
	started  time.Time    // when the child process was started
}

type targetKind int

const (
	targetChild targetKind = iota
	targetInProc
	targetExternal
)

// childServer is `cohort serve` in a child process.
type childServer struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's answer, set before done is closed
	logs *childLog
}

// startChild starts bin (built from this module's cmd/cohort when empty)
// as `cohort serve` on a free loopback port and a new temporary data
// directory, with the given keys and GOMAXPROCS (0: the child's default),
// and returns once GET /healthz answers 200. stop sends SIGTERM, waits for
// the exit and removes the directory (and the binary it built).
func startChild(ctx context.Context, stderr io.Writer, bin string, gomaxprocs int, writeKey, apiKey string) (*target, error) {
	return startChildIn(ctx, stderr, bin, gomaxprocs, writeKey, apiKey, "", 30*time.Second)
}

// startChildIn is startChild on data directory dir when it is not "" (it
// is then kept: a later start opens the same data), waiting up to
// healthWait for /healthz to answer 200.
func startChildIn(ctx context.Context, stderr io.Writer, bin string, gomaxprocs int, writeKey, apiKey, dir string, healthWait time.Duration) (*target, error) {
	var cleanup []func() error
	undo := func() error {
		var errs []error
		for i := len(cleanup) - 1; i >= 0; i-- {
			errs = append(errs, cleanup[i]())
		}
		return errors.Join(errs...)
	}
	if bin == "" {
		tmp, err := os.MkdirTemp("", "cohort-bench-bin-")
		if err != nil {
			return nil, fmt.Errorf("server binary: %w", err)
		}
		cleanup = append(cleanup, func() error { return os.RemoveAll(tmp) })
		bin = filepath.Join(tmp, "cohort")
		fmt.Fprintf(stderr, "bench: building the server (go build -o %s github.com/cohortdb/cohort/cmd/cohort)...\n", bin)
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/cohortdb/cohort/cmd/cohort")
		if out, err := build.CombinedOutput(); err != nil {
			undo()
			return nil, fmt.Errorf("building the server binary (run from the module's tree, or give --server-bin): %w\n%s", err, out)
		}
	}
	version, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		undo()
		return nil, fmt.Errorf("%s version: %w", bin, err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cohort-bench-"); err != nil {
			undo()
			return nil, fmt.Errorf("data directory: %w", err)
		}
		cleanup = append(cleanup, func() error { return os.RemoveAll(dir) })
	}

	c := &childServer{dir: dir, done: make(chan struct{}), logs: newChildLog(stderr)}
	c.cmd = exec.Command(bin, "serve", "--http", "127.0.0.1:0", "--data", dir)
	// Later entries win over the inherited ones.
	c.cmd.Env = append(os.Environ(), "COHORT_WRITE_KEY="+writeKey, "COHORT_API_KEY="+apiKey, "COHORT_ADMIN_KEY="+childAdminKey(apiKey))
	if gomaxprocs > 0 {
		c.cmd.Env = append(c.cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
	}
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = c.logs
	c.cmd.SysProcAttr = childProcAttr()
	c.cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	if err := c.cmd.Start(); err != nil {
		undo()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	cleanup = append(cleanup, c.stop)

	addr, err := c.awaitAddr(ctx, 30*time.Second)
	if err != nil {
		return nil, errors.Join(err, undo())
	}
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	if err := waitHealthy(ctx, client, base+"/healthz", healthWait); err != nil {
		return nil, errors.Join(err, undo())
	}
	procs := "its default GOMAXPROCS"
	if gomaxprocs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS=%d", gomaxprocs)
	}
	return &target{
		child: c, started: started,
		base: base, writeKey: writeKey, apiKey: apiKey, adminKey: childAdminKey(apiKey), kind: targetChild, fresh: true,
		version:  strings.TrimSpace(string(version)),
		desc:     fmt.Sprintf("child process %d (%s serve, %s) on %s, data in %s, default configuration (WAL fsync before every answer)", c.cmd.Process.Pid, bin, procs, addr, dir),
		warnings: c.logs.warnings,
		stop:     undo,
	}, nil
}

// awaitAddr reads the address the child listens on from its log (it binds
// 127.0.0.1:0, so no port can be taken by someone else in between).
func (c *childServer) awaitAddr(ctx context.Context, timeout time.Duration) (string, error) {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case addr := <-c.logs.addr:
		return addr, nil
	case <-c.done:
		return "", fmt.Errorf("the server exited before listening: %v\n%s", c.err, c.logs.head())
	case <-tm.C:
		return "", fmt.Errorf("the server did not say where it listens within %s:\n%s", timeout, c.logs.head())
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// stop sends SIGTERM (the server drains and exits 0) and waits; after 30 s
// it kills the process.
func (c *childServer) stop() error {
	select {
	case <-c.done:
		return fmt.Errorf("the server had exited during the run: %v\n%s", c.err, c.logs.head())
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the server: %w", err)
	}
	tm := time.NewTimer(30 * time.Second)
	defer tm.Stop()
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("the server's exit: %w\n%s", c.err, c.logs.head())
		}
		return nil
	case <-tm.C:
		c.cmd.Process.Kill()
		<-c.done
		return errors.New("the server did not exit within 30 s of SIGTERM; killed")
	}
}

// kill ends the child with SIGKILL, as a crash would, and waits for it.
func (c *childServer) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// childLog reads the child's log lines (slog text): the listening address
// is sent on addr, errors are copied to out as they come, warnings are
// counted by message, and the first lines are kept for error reports.
type childLog struct {
	out  io.Writer
	addr chan string
	w    *io.PipeWriter

	mu     sync.Mutex
	counts map[string]int
	first  []string
}

var (
	logMsg  = regexp.MustCompile(`\bmsg=("(?:[^"\\]|\\.)*"|\S+)`)
	logAddr = regexp.MustCompile(`\baddr=(\S+)`)
)

func newChildLog(out io.Writer) *childLog {
	pr, pw := io.Pipe()
	l := &childLog{out: out, addr: make(chan string, 1), w: pw, counts: map[string]int{}}
	go l.read(pr)
	return l
}

func (l *childLog) Write(p []byte) (int, error) { return l.w.Write(p) }

func (l *childLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		if len(l.first) < 40 {
			l.first = append(l.first, line)
		}
		l.mu.Unlock()
		msg := ""
		if m := logMsg.FindStringSubmatch(line); m != nil {
			msg = m[1]
			if uq, err := strconv.Unquote(msg); err == nil {
				msg = uq
			}
		}
		switch {
		case !sent && strings.HasPrefix(msg, "listening"):
			if m := logAddr.FindStringSubmatch(line); m != nil {
				l.addr <- m[1]
				sent = true
			}
		case strings.Contains(line, "level=ERROR"):
			fmt.Fprintf(l.out, "server: %s\n", line)
		case strings.Contains(line, "level=WARN"):
			l.mu.Lock()
			l.counts[msg]++
			l.mu.Unlock()
		}
	}
	io.Copy(io.Discard, r) // a line over 1 MiB: keep the child from blocking
}

func (l *childLog) head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.first, "\n")
}

func (l *childLog) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return countedWarnings(l.counts)
}

// startInProc opens a server with the default configuration on a new
// temporary data directory and serves it on a free loopback port in this
// process. stop drains it, closes it and removes the directory.
func startInProc(stderr io.Writer, writeKey, apiKey string) (*target, error) {
	dir, err := os.MkdirTemp("", "cohort-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.Data = dir
	cfg.WriteKey, cfg.APIKey = writeKey, apiKey
	log := newBenchLog(stderr)
	srv, err := server.Open(cfg, server.Options{Logger: slog.New(log), Out: io.Discard})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	// The server has its own context: an interrupted run still drains it.
	sctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()
	return &target{
		base: "http://" + srv.Addr(), writeKey: writeKey, apiKey: apiKey, kind: targetInProc, fresh: true,
		desc:     fmt.Sprintf("in this process (--in-process) on %s, data in %s, default configuration (WAL fsync before every answer)", srv.Addr(), dir),
		warnings: log.warnings,
		stop: func() error {
			cancel()
			serveErr := <-errc
			closeErr := srv.Close()
			return errors.Join(serveErr, closeErr, os.RemoveAll(dir))
		},
	}, nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, client *http.Client, url string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		if sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) != nil {
			return fmt.Errorf("server at %s is not healthy: %v", url, last)
		}
	}
}

// childAdminKey is the admin key a child server is started with, derived
// from its run's API key.
func childAdminKey(apiKey string) string { return "adm_" + apiKey }
