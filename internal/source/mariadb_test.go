package source

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// mariaDB is a private MariaDB server with the row binlog on, in a
// temporary directory on its own port (the machine's own server, if any,
// is left alone).
type mariaDB struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func (db *mariaDB) addr() string { return "127.0.0.1:" + strconv.Itoa(db.port) }

// startMariaDB initialises a data directory and starts the server on it.
func startMariaDB(t *testing.T) *mariaDB { return startMariaDBB(t) }

// startMariaDBB is startMariaDB for tests and benchmarks.
func startMariaDBB(t testing.TB) *mariaDB {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		t.Fatalf("mariadbd is not installed (.ci/run installs Debian's mariadb-server): %v", err)
	}
	_ = bin
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	db := &mariaDB{t: t, dir: dir, port: port}
	db.start()
	t.Cleanup(db.stop)
	return db
}

func (db *mariaDB) start() {
	db.t.Helper()
	data := filepath.Join(db.dir, "data")
	cmd := exec.Command("mariadbd", "--no-defaults", "--user=root", "--datadir="+data, "--port="+strconv.Itoa(db.port),
		"--bind-address=127.0.0.1", "--socket="+filepath.Join(db.dir, "sock"), "--pid-file="+filepath.Join(db.dir, "pid"),
		"--log-bin="+filepath.Join(data, "binlog"), "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1",
		"--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2")
	log, err := os.Create(filepath.Join(db.dir, "mariadbd.log"))
	if err != nil {
		db.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		db.t.Fatal(err)
	}
	db.cmd, db.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(db.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := client.Connect(db.addr(), "root", "", "")
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-db.done:
			b, _ := os.ReadFile(filepath.Join(db.dir, "mariadbd.log"))
			db.t.Fatalf("mariadbd exited: %s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			db.t.Fatalf("mariadbd did not accept connections within 30 s: %v", err)
		}
	}
}

// stop shuts the server down (SIGTERM) and waits for it.
func (db *mariaDB) stop() {
	if db.cmd == nil {
		return
	}
	select {
	case <-db.done:
	default:
		db.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-db.done:
		case <-time.After(30 * time.Second):
			db.cmd.Process.Kill()
			<-db.done
		}
	}
	db.cmd = nil
}

// conn opens a connection as root.
func (db *mariaDB) conn() *client.Conn {
	db.t.Helper()
	c, err := client.Connect(db.addr(), "root", "", "")
	if err != nil {
		db.t.Fatal(err)
	}
	return c
}

// exec runs statements, failing the test on an error.
func (db *mariaDB) exec(stmts ...string) {
	db.t.Helper()
	c := db.conn()
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			db.t.Fatalf("%s: %v", s, err)
		}
	}
}
