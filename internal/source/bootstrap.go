package source

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/schema"
	"golang.org/x/time/rate"
)

// bootstrapChunk is how many rows one primary-key scan reads.
const bootstrapChunk = 500

// bootstrap backfills table (rows matching where) by chunked primary-key
// scans, as snapshot reads: each chunk is submitted under the live lock,
// skipping the rows the live lane changed since the bootstrap began (the
// binlog has their newer values), so an older snapshot copy never
// overwrites a live change. Chunks are throttled (bootstrap_rate rows/s)
// and the live lane never waits for more than one chunk's commit.
func (m *mysqlSource) bootstrap(ctx context.Context, table, where string) error {
	t, ok := m.rows.tables[table]
	if !ok {
		return fmt.Errorf("table %q has no mapping in source %q", table, m.s.cfg.Name)
	}
	if m.s.ws == nil {
		return fmt.Errorf("source %q has not started", m.s.cfg.Name)
	}
	conn, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	db, name, _ := strings.Cut(table, ".")
	sch, err := schema.NewTable(conn, db, name)
	if err != nil {
		return fmt.Errorf("read the schema of %s: %w", table, err)
	}
	pk := t.cfg.PrimaryKey
	if pk == "" {
		pk = "id"
		if len(sch.PKColumns) == 1 {
			pk = sch.Columns[sch.PKColumns[0]].Name
		}
	}
	quoted := "`" + db + "`.`" + name + "`"
	cond := ""
	if where != "" {
		cond = " AND (" + where + ")"
	}
	res, err := conn.Execute("SELECT COUNT(*) FROM " + quoted + " WHERE 1=1" + cond)
	if err != nil {
		return fmt.Errorf("count the rows of %s: %w", table, err)
	}
	total, _ := res.GetInt(0, 0)
	res.Close()
	m.s.mu.Lock()
	m.s.boot.Total = total
	m.s.mu.Unlock()

	m.live.Lock()
	m.touched = map[string]bool{}
	m.live.Unlock()
	defer func() {
		m.live.Lock()
		m.touched = nil
		m.live.Unlock()
	}()
	perSec := m.s.cfg.BootstrapRowsPerSecond
	if perSec <= 0 {
		perSec = 20000
	}
	lim := rate.NewLimiter(rate.Limit(perSec), bootstrapChunk)
	run := m.s.mgr.opts.Now().UnixNano()
	types := columnTypes(sch)
	var last any
	for {
		q := "SELECT * FROM " + quoted + " WHERE 1=1" + cond
		var args []any
		if last != nil {
			q += " AND `" + pk + "` > ?"
			args = append(args, last)
		}
		q += " ORDER BY `" + pk + "` LIMIT " + fmt.Sprint(bootstrapChunk)
		res, err := conn.Execute(q, args...)
		if err != nil {
			return fmt.Errorf("scan %s: %w", table, err)
		}
		n := res.RowNumber()
		if n == 0 {
			res.Close()
			return nil
		}
		received := m.s.mgr.opts.Now().UTC()
		cs := make([]change, 0, n)
		keys := make([]string, 0, n)
		for i := 0; i < n; i++ {
			vals := map[string]any{}
			pkVals := make([]any, len(sch.Columns))
			for j, f := range res.Fields {
				v := res.Values[i][j].Value()
				if b, ok := v.([]byte); ok {
					v = string(b) // the result set's buffers are reused
				}
				vals[string(f.Name)] = v
				if k := sch.FindColumn(string(f.Name)); k >= 0 {
					pkVals[k] = v
				}
			}
			last = vals[pk]
			origin := fmt.Sprintf("mysql-bootstrap:%s:%s:%d", table, idString(last), run)
			cs = append(cs, m.rows.change(&row{table: table, op: opRead, after: vals, types: types, ts: received}, origin, origin, received, nil))
			keys = append(keys, pkKey(sch, pkVals))
		}
		res.Close()
		if err := lim.WaitN(ctx, n); err != nil {
			return err
		}
		m.live.Lock()
		kept := cs[:0]
		for i, c := range cs {
			if !m.touched[keys[i]] {
				kept = append(kept, c)
			}
		}
		err = m.s.applyChanges(ctx, kept, nil)
		m.live.Unlock()
		if err != nil {
			return err
		}
		m.s.mu.Lock()
		m.s.boot.Done += int64(n)
		m.s.mu.Unlock()
		m.s.mgr.m.records.WithLabelValues(m.s.cfg.Name).Add(float64(len(kept)))
	}
}
