package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PGServer is a private PostgreSQL server in a temporary directory.
type PGServer struct {
	// URL connects to it as user postgres (trust authentication).
	URL     string
	Version string
	dir     string
	bin     string
	cred    *syscall.Credential
	log     io.Writer
}

// PGTuning holds server settings passed with -c on start.
type PGTuning map[string]string

// BenchPGTuning is what a competent engineer would set for an analytical
// benchmark on this machine instead of the 128 MB defaults: more shared
// buffers and work memory, parallel workers on both cores, and no fsync
// (the load is repeatable; durability is not what is measured).
var BenchPGTuning = PGTuning{
	"shared_buffers":                  "4GB",
	"effective_cache_size":            "12GB",
	"work_mem":                        "256MB",
	"maintenance_work_mem":            "1GB",
	"max_wal_size":                    "8GB",
	"max_parallel_workers_per_gather": "2",
	"fsync":                           "off",
	"synchronous_commit":              "off",
	"full_page_writes":                "off",
}

// findPGBin returns the directory holding initdb and pg_ctl: where PATH
// finds pg_ctl, else the newest /usr/lib/postgresql/*/bin.
func findPGBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: install the postgresql package (Debian: apt-get install postgresql), or give a server with --pg-url / COHORT_PG_URL")
}

// StartPostgres initialises a cluster in a new temporary directory and
// starts it on a free loopback port. As root it runs the server as user
// postgres (initdb refuses root). log receives the server's output paths
// and progress; Stop stops the server and removes the directory.
func StartPostgres(ctx context.Context, tuning PGTuning, log io.Writer) (*PGServer, error) {
	if log == nil {
		log = io.Discard
	}
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	base := ""
	var cred *syscall.Credential
	var uid, gid int
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and there is no user postgres to run the server as: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		base = "/tmp" // the postgres user must reach it; $TMPDIR may be private
	}
	dir, err := os.MkdirTemp(base, "cohort-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres temp dir: %w", err)
	}
	s := &PGServer{dir: dir, bin: bin, cred: cred, log: log}
	fail := func(err error) (*PGServer, error) {
		s.Stop(context.Background())
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(fmt.Errorf("postgres temp dir: %w", err))
		}
	}
	initdb := []string{"-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"}
	if out, err := s.run(ctx, "initdb", append(initdb, "--locale=C.UTF-8")...); err != nil {
		// Without the C.UTF-8 locale, fall back to the C locale.
		fmt.Fprintf(log, "postgres: initdb with C.UTF-8 failed (%v), retrying with --no-locale\n%s", err, out)
		os.RemoveAll(data)
		if out, err := s.run(ctx, "initdb", append(initdb, "--no-locale")...); err != nil {
			return fail(fmt.Errorf("initdb: %w\n%s", err, out))
		}
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	opts := []string{"-p " + strconv.Itoa(port), "-k " + dir, "-c listen_addresses=127.0.0.1"}
	keys := make([]string, 0, len(tuning))
	for k := range tuning {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		opts = append(opts, "-c "+k+"="+tuning[k])
	}
	logFile := filepath.Join(dir, "server.log")
	if out, err := s.run(ctx, "pg_ctl", "-D", data, "-o", strings.Join(opts, " "), "-l", logFile, "-w", "-t", "120", "start"); err != nil {
		b, _ := os.ReadFile(logFile)
		return fail(fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, b))
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if out, err := s.run(ctx, "pg_ctl", "--version"); err == nil {
		s.Version = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(log, "postgres: private server %s on 127.0.0.1:%d, data in %s\n", s.Version, port, data)
	return s, nil
}

// Stop stops the server (fast shutdown) and removes its directory.
func (s *PGServer) Stop(ctx context.Context) error {
	var errs []error
	data := filepath.Join(s.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if out, err := s.run(ctx, "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w\n%s", err, out))
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove postgres dir: %w", err))
	}
	return errors.Join(errs...)
}

func (s *PGServer) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
