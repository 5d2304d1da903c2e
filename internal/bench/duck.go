package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// duckEngine is the DuckDB side: an embedded database file, one
// connection.
type duckEngine struct {
	db      *sql.DB
	conn    *sql.Conn
	path    string
	version string
}

func openDuck(ctx context.Context, dir string) (*duckEngine, error) {
	path := filepath.Join(dir, "peers.duckdb")
	os.Remove(path)
	os.Remove(path + ".wal")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	e := &duckEngine{db: db, conn: conn, path: path}
	if err := conn.QueryRowContext(ctx, "SELECT version()").Scan(&e.version); err != nil {
		e.close()
		return nil, fmt.Errorf("duckdb version: %w", err)
	}
	e.version = "DuckDB " + e.version
	return e, nil
}

func (e *duckEngine) dialect() Dialect { return DuckDB }
func (e *duckEngine) name() string     { return "DuckDB" }

func (e *duckEngine) close() {
	e.conn.Close()
	e.db.Close()
}

func (e *duckEngine) exec(ctx context.Context, q string) error {
	if _, err := e.conn.ExecContext(ctx, q); err != nil {
		return err
	}
	return nil
}

func (e *duckEngine) count(ctx context.Context, q string) (uint64, error) {
	var n int64
	if err := e.conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// appender opens a DuckDB appender on table over the engine's connection.
func (e *duckEngine) appender(table string) (*duckdb.Appender, error) {
	var a *duckdb.Appender
	err := e.conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is a %T", dc)
		}
		var err error
		a, err = duckdb.NewAppenderFromConn(c, "", table)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("duckdb appender on %s: %w", table, err)
	}
	return a, nil
}

// load appends the rows into staging tables, then builds the tables the
// queries read: profiles with the later identifies merged in, and events
// sorted by (name, ts) so that DuckDB's per-row-group min/max skip the
// other names and the time outside a window, which is how one makes
// DuckDB fast on such scans (it has no secondary indexes that help them).
func (e *duckEngine) load(ctx context.Context, d Data, batch int, log io.Writer) (st EngineStats, err error) {
	st = EngineStats{Engine: e.name(), Version: e.version}
	t := time.Now()
	ddl := []string{
		"CREATE TABLE profiles_raw (id VARCHAR, num INTEGER, traits VARCHAR)",
		"CREATE TABLE events_raw (profile_num INTEGER, name VARCHAR, ts TIMESTAMPTZ, props VARCHAR)",
		"CREATE TABLE patches_raw (id VARCHAR, num INTEGER, traits VARCHAR)",
	}
	for _, q := range ddl {
		if err := e.exec(ctx, q); err != nil {
			return st, fmt.Errorf("%s: %w", q, err)
		}
	}
	apps := map[string]*duckdb.Appender{}
	for _, tb := range []string{"profiles_raw", "events_raw", "patches_raw"} {
		a, err := e.appender(tb)
		if err != nil {
			return st, err
		}
		apps[tb] = a
	}
	closed := false
	defer func() {
		if !closed {
			for _, a := range apps {
				a.Close()
			}
		}
	}()
	err = consume(ctx, d, batch, func(b rowBatch) error {
		for _, r := range b.profiles {
			if err := apps["profiles_raw"].AppendRow(r.id, r.num, string(r.traits)); err != nil {
				return fmt.Errorf("append profile: %w", err)
			}
		}
		for _, r := range b.events {
			if err := apps["events_raw"].AppendRow(r.num, r.name, r.ts, string(r.props)); err != nil {
				return fmt.Errorf("append event: %w", err)
			}
		}
		for _, r := range b.patches {
			if err := apps["patches_raw"].AppendRow(r.id, r.num, string(r.traits)); err != nil {
				return fmt.Errorf("append patch: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	closed = true
	var errs []error
	for tb, a := range apps {
		if err := a.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close appender on %s: %w", tb, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, err
	}
	fmt.Fprintf(log, "peers: DuckDB rows appended in %s; building tables...\n", time.Since(t).Round(time.Millisecond))
	post := []string{
		// A profile is identified at most once later on in the generated data;
		// json_merge_patch merges its keys at the top level.
		`CREATE TABLE profiles AS
			SELECT coalesce(x.id, r.id) AS id, r.num,
				CAST(CASE WHEN x.num IS NULL THEN r.traits ELSE json_merge_patch(r.traits, x.traits) END AS JSON) AS traits
			FROM profiles_raw r LEFT JOIN patches_raw x ON x.num = r.num ORDER BY r.num`,
		"CREATE TABLE events AS SELECT profile_num, name, ts, CAST(props AS JSON) AS props FROM events_raw ORDER BY name, ts",
		"DROP TABLE profiles_raw",
		"DROP TABLE events_raw",
		"DROP TABLE patches_raw",
		"CREATE TABLE segment_members (segment VARCHAR NOT NULL, num INTEGER NOT NULL, PRIMARY KEY (segment, num))",
		"CHECKPOINT",
	}
	for _, q := range post {
		if err := e.exec(ctx, q); err != nil {
			return st, fmt.Errorf("%s: %w", q, err)
		}
	}
	st.Load = time.Since(t)
	var mem sql.NullInt64
	if err := e.conn.QueryRowContext(ctx, "SELECT sum(memory_usage_bytes) FROM duckdb_memory()").Scan(&mem); err != nil {
		return st, fmt.Errorf("duckdb memory: %w", err)
	}
	st.Memory = mem.Int64
	for _, p := range []string{e.path, e.path + ".wal"} {
		if fi, err := os.Stat(p); err == nil {
			st.Disk += fi.Size()
		}
	}
	st.Note = "appender into staging tables, then CREATE TABLE AS ... ORDER BY name, ts; memory is duckdb_memory() after the load"
	return st, nil
}
