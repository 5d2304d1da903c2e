package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgEngine is the PostgreSQL side: one connection, the tables in a schema
// of their own (dropped at the end, so an existing server is left as it
// was).
type pgEngine struct {
	conn    *pgx.Conn
	schema  string
	version string
}

func openPG(ctx context.Context, url string) (*pgEngine, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", redactURL(url), err)
	}
	e := &pgEngine{conn: conn, schema: fmt.Sprintf("cohort_bench_%d", os.Getpid())}
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&e.version); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("postgres: server version: %w", err)
	}
	e.version = "PostgreSQL " + e.version
	return e, nil
}

// PGReachable reports whether a PostgreSQL server answers at url (nil) or
// why not.
func PGReachable(ctx context.Context, url string) error {
	e, err := openPG(ctx, url)
	if err != nil {
		return err
	}
	e.close(ctx)
	return nil
}

func (e *pgEngine) dialect() Dialect { return Postgres }
func (e *pgEngine) name() string     { return "PostgreSQL" }

func (e *pgEngine) close(ctx context.Context) {
	e.conn.Close(context.WithoutCancel(ctx))
}

// drop removes the benchmark's schema.
func (e *pgEngine) drop(ctx context.Context) error {
	if _, err := e.conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+e.schema+" CASCADE"); err != nil {
		return fmt.Errorf("postgres: drop schema %s: %w", e.schema, err)
	}
	return nil
}

func (e *pgEngine) exec(ctx context.Context, q string) error {
	if _, err := e.conn.Exec(ctx, q); err != nil {
		return err
	}
	return nil
}

func (e *pgEngine) count(ctx context.Context, q string) (uint64, error) {
	var n int64
	if err := e.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// load creates the schema a competent engineer would, loads it with COPY,
// then adds the indexes and statistics: profiles(num) primary key,
// profiles(id) unique, a GIN index on traits (jsonb_path_ops, for
// containment), events(name, ts) for name-and-window scans and
// events(profile_num, name, ts) for per-profile lookups.
func (e *pgEngine) load(ctx context.Context, d Data, batch int, log io.Writer) (EngineStats, error) {
	st := EngineStats{Engine: e.name(), Version: e.version}
	t := time.Now()
	ddl := []string{
		"DROP SCHEMA IF EXISTS " + e.schema + " CASCADE",
		"CREATE SCHEMA " + e.schema,
		"SET search_path = " + e.schema,
		"CREATE TABLE profiles (id text NOT NULL, num integer NOT NULL, traits jsonb NOT NULL)",
		"CREATE TABLE events (profile_num integer NOT NULL, name text NOT NULL, ts timestamptz NOT NULL, props jsonb NOT NULL)",
		"CREATE TABLE segment_members (segment text NOT NULL, num integer NOT NULL, PRIMARY KEY (segment, num))",
		"CREATE TEMP TABLE patches (id text NOT NULL, num integer NOT NULL, traits jsonb NOT NULL)",
	}
	for _, q := range ddl {
		if err := e.exec(ctx, q); err != nil {
			return st, fmt.Errorf("%s: %w", q, err)
		}
	}
	var patches []patchRow
	err := consume(ctx, d, batch, func(b rowBatch) error {
		if len(b.profiles) > 0 {
			_, err := e.conn.CopyFrom(ctx, pgx.Identifier{"profiles"}, []string{"id", "num", "traits"},
				pgx.CopyFromSlice(len(b.profiles), func(i int) ([]any, error) {
					r := &b.profiles[i]
					return []any{r.id, r.num, r.traits}, nil
				}))
			if err != nil {
				return fmt.Errorf("copy profiles: %w", err)
			}
		}
		if len(b.events) > 0 {
			_, err := e.conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"profile_num", "name", "ts", "props"},
				pgx.CopyFromSlice(len(b.events), func(i int) ([]any, error) {
					r := &b.events[i]
					return []any{r.num, r.name, r.ts, r.props}, nil
				}))
			if err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
		}
		patches = append(patches, b.patches...)
		return nil
	})
	if err != nil {
		return st, err
	}
	if len(patches) > 0 {
		_, err := e.conn.CopyFrom(ctx, pgx.Identifier{"patches"}, []string{"id", "num", "traits"},
			pgx.CopyFromSlice(len(patches), func(i int) ([]any, error) {
				r := &patches[i]
				return []any{r.id, r.num, r.traits}, nil
			}))
		if err != nil {
			return st, fmt.Errorf("copy patches: %w", err)
		}
	}
	fmt.Fprintf(log, "peers: PostgreSQL rows copied in %s; indexing...\n", time.Since(t).Round(time.Millisecond))
	post := []string{
		// Identifies after the first: later patches win, keys merge at the top level.
		"UPDATE profiles p SET traits = p.traits || x.traits, id = x.id FROM patches x WHERE p.num = x.num",
		"DROP TABLE patches",
		"ALTER TABLE profiles ADD PRIMARY KEY (num)",
		"CREATE UNIQUE INDEX profiles_id ON profiles (id)",
		"CREATE INDEX profiles_traits ON profiles USING gin (traits jsonb_path_ops)",
		"CREATE INDEX events_name_ts ON events (name, ts)",
		"CREATE INDEX events_profile ON events (profile_num, name, ts)",
		"VACUUM ANALYZE profiles",
		"VACUUM ANALYZE events",
	}
	for _, q := range post {
		if err := e.exec(ctx, q); err != nil {
			return st, fmt.Errorf("%s: %w", q, err)
		}
	}
	st.Load = time.Since(t)
	var disk, buffers int64
	err = e.conn.QueryRow(ctx, `SELECT pg_total_relation_size('profiles') + pg_total_relation_size('events'),
		(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')`).Scan(&disk, &buffers)
	if err != nil {
		return st, fmt.Errorf("postgres: sizes: %w", err)
	}
	st.Disk, st.Memory = disk, buffers
	st.Note = "COPY, then UPDATE of the later identifies, 5 indexes, VACUUM ANALYZE; memory is shared_buffers (plus the OS page cache)"
	return st, nil
}
