package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/canal"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-mysql-org/go-mysql/schema"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

// binlogPos is a mysql source's stored position: the end of the last
// transaction whose rows are applied.
type binlogPos struct {
	File string `json:"file"`
	Pos  uint32 `json:"pos"`
}

// mysqlSource follows a MySQL/MariaDB row binlog with go-mysql's canal
// (no mysqldump: backfills go through the bootstrap lane). Rows are
// buffered per transaction and submitted at its XID with the position
// after it, so a transaction's effects and position commit together; a
// transaction too large to buffer is submitted in parts whose messageIds
// (mysql:<file>:<event end>:<row>) make a replay of them a duplicate.
// canal re-reads a table's schema when an ALTER TABLE passes by.
type mysqlSource struct {
	s    *src
	rows *mapper

	mu   sync.Mutex
	pos  binlogPos
	file string // the binlog file being read

	// live serialises the live lane's submissions with the bootstrap
	// lane's, and holds the rows the live lane changed since a bootstrap
	// began ("table\x00pk"), which the bootstrap must not overwrite.
	live    sync.Mutex
	touched map[string]bool // nil: no bootstrap running

	derived *deriver
}

func newMySQL(s *src) (*mysqlSource, error) {
	m, err := newMapper(s.cfg.Tables)
	if err != nil {
		return nil, err
	}
	ms := &mysqlSource{s: s, rows: m}
	if len(s.cfg.Derived) > 0 {
		ms.derived = newDeriver(ms)
	}
	return ms, nil
}

func (m *mysqlSource) position() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pos.File == "" {
		return nil
	}
	return m.pos
}

func (m *mysqlSource) posKey() []byte { return store.SourcePosKey(m.s.ws.Num, m.s.cfg.Name, "binlog") }

func (m *mysqlSource) loadPosition() (binlogPos, bool, error) {
	v, ok, err := store.Get(m.s.mgr.st.DB(), m.posKey())
	if err != nil || !ok {
		return binlogPos{}, false, err
	}
	var p binlogPos
	if err := json.Unmarshal(v, &p); err != nil || p.File == "" {
		return binlogPos{}, false, fmt.Errorf("stored binlog position %q: %w", v, store.ErrCorruption)
	}
	return p, true, nil
}

func (m *mysqlSource) canalConfig() *canal.Config {
	c := canal.NewDefaultConfig()
	c.Addr, c.User, c.Password = m.s.cfg.Addr, m.s.cfg.User, m.s.cfg.Password
	c.ServerID = m.s.cfg.ServerID
	if c.ServerID == 0 {
		c.ServerID = 1001
	}
	c.Flavor = m.s.cfg.Flavor
	if c.Flavor == "" {
		c.Flavor = mysql.MariaDBFlavor
	}
	c.Dump.ExecutionPath = "" // no mysqldump: the bootstrap lane backfills
	c.Logger = m.s.log.With("component", "canal")
	c.MaxReconnectAttempts = 1 // errors come back here, to back off and be reported
	c.TimestampStringLocation = time.UTC
	c.HeartbeatPeriod = time.Second
	c.ReadTimeout = 10 * time.Second
	for _, t := range m.s.cfg.Tables {
		c.IncludeTableRegex = append(c.IncludeTableRegex, "^"+regexp.QuoteMeta(t.Name)+"$")
	}
	return c
}

func (m *mysqlSource) run(ctx context.Context) error {
	pos, ok, err := m.loadPosition()
	if err != nil {
		return permanent{err}
	}
	c, err := canal.NewCanal(m.canalConfig())
	if err != nil {
		return fmt.Errorf("connect to %s: %w", m.s.cfg.Addr, err)
	}
	if !ok {
		mp, err := c.GetMasterPos()
		if err != nil {
			c.Close()
			return fmt.Errorf("read the binlog position of %s: %w", m.s.cfg.Addr, err)
		}
		pos = binlogPos{File: mp.Name, Pos: mp.Pos}
		m.s.log.Info("no stored position: following the binlog from its end", "file", pos.File, "pos", pos.Pos)
	}
	m.mu.Lock()
	m.pos, m.file = pos, pos.File
	m.mu.Unlock()
	h := &binlogHandler{m: m, ctx: ctx, c: c}
	c.SetEventHandler(h)
	errc := make(chan error, 1)
	go func() { errc <- c.RunFrom(mysql.Position{Name: pos.File, Pos: pos.Pos}) }()
	stop := make(chan struct{})
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer close(stop)
	helpers.Go(func() { m.reportLag(c, stop) })
	if m.derived != nil {
		helpers.Go(func() { m.derived.run(ctx, stop) })
	}
	select {
	case <-ctx.Done():
		c.Close()
		<-errc
		return nil
	case err := <-errc:
		c.Close()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the binlog stream ended")
		}
		return fmt.Errorf("binlog of %s: %w", m.s.cfg.Addr, err)
	}
}

// reportLag publishes canal's replication delay as the source's lag.
func (m *mysqlSource) reportLag(c *canal.Canal, stop chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d := time.Duration(c.GetDelay()) * time.Second
			if d > 24*time.Hour*365 {
				d = 0 // heartbeats carry no timestamp: nothing is behind
			}
			m.s.setLag(0, d)
		}
	}
}

// binlogHandler receives canal's events.
type binlogHandler struct {
	canal.DummyEventHandler
	m       *mysqlSource
	ctx     context.Context
	c       *canal.Canal
	pending []change
	rows    int
	keys    []string // "table\x00pk" of the pending rows
	tables  map[string][]string
}

func (h *binlogHandler) String() string { return "cohort" }

func (h *binlogHandler) OnRotate(_ *replication.EventHeader, e *replication.RotateEvent) error {
	h.m.mu.Lock()
	h.m.file = string(e.NextLogName)
	h.m.mu.Unlock()
	return nil
}

// columnTypes maps a table's columns to the mapping's types.
func columnTypes(t *schema.Table) map[string]string {
	out := map[string]string{}
	for _, c := range t.Columns {
		switch c.Type {
		case schema.TYPE_DATETIME:
			out[c.Name] = "datetime"
		case schema.TYPE_TIMESTAMP:
			out[c.Name] = "timestamp"
		case schema.TYPE_DATE:
			out[c.Name] = "date"
		case schema.TYPE_DECIMAL:
			out[c.Name] = "decimal"
		case schema.TYPE_JSON:
			out[c.Name] = "json"
		case schema.TYPE_NUMBER:
			if strings.HasPrefix(strings.ToLower(c.RawType), "tinyint(1)") {
				out[c.Name] = "boolean"
			}
		}
	}
	return out
}

func rowMap(t *schema.Table, vals []any) map[string]any {
	out := make(map[string]any, len(t.Columns))
	for i, c := range t.Columns {
		if i < len(vals) {
			out[c.Name] = vals[i]
		}
	}
	return out
}

// pkKey names a row by its table and primary key, for the bootstrap lane.
func pkKey(t *schema.Table, vals []any) string {
	var b strings.Builder
	b.WriteString(t.Schema + "." + t.Name)
	for _, i := range t.PKColumns {
		b.WriteByte(0)
		if i < len(vals) {
			b.WriteString(idString(vals[i]))
		}
	}
	return b.String()
}

func (h *binlogHandler) OnRow(e *canal.RowsEvent) error {
	h.m.mu.Lock()
	file := h.m.file
	h.m.mu.Unlock()
	name := e.Table.Schema + "." + e.Table.Name
	types := columnTypes(e.Table)
	ts := time.Unix(int64(e.Header.Timestamp), 0).UTC()
	received := h.m.s.mgr.opts.Now().UTC()
	var users []string // for derived traits
	add := func(i int, r *row, vals []any) {
		origin := fmt.Sprintf("mysql:%s:%d:%d", file, e.Header.LogPos, i)
		if h.m.derived != nil {
			users = append(users, h.m.rows.userIDs(r)...)
		}
		h.pending = append(h.pending, h.m.rows.change(r, origin, origin, received, nil))
		h.keys = append(h.keys, pkKey(e.Table, vals))
		h.rows++
	}
	switch e.Action {
	case canal.InsertAction:
		for i, v := range e.Rows {
			add(i, &row{table: name, op: opInsert, after: rowMap(e.Table, v), types: types, ts: ts}, v)
		}
	case canal.DeleteAction:
		for i, v := range e.Rows {
			add(i, &row{table: name, op: opDelete, before: rowMap(e.Table, v), types: types, ts: ts}, v)
		}
	case canal.UpdateAction:
		for i := 0; i+1 < len(e.Rows); i += 2 {
			add(i/2, &row{table: name, op: opUpdate, before: rowMap(e.Table, e.Rows[i]), after: rowMap(e.Table, e.Rows[i+1]), types: types, ts: ts}, e.Rows[i+1])
		}
	}
	if h.m.derived != nil {
		h.m.derived.rowsChanged(name, users)
	}
	if h.rows >= 5000 {
		return h.flush(nil)
	}
	return nil
}

func (h *binlogHandler) OnXID(_ *replication.EventHeader, next mysql.Position) error {
	return h.flush(&next)
}

func (h *binlogHandler) OnDDL(_ *replication.EventHeader, next mysql.Position, _ *replication.QueryEvent) error {
	return h.flush(&next)
}

// flush submits the pending rows, with the position after them when the
// transaction is complete (next != nil).
func (h *binlogHandler) flush(next *mysql.Position) error {
	var writes []ingest.Write
	var pos binlogPos
	if next != nil {
		pos = binlogPos{File: next.Name, Pos: next.Pos}
		if pos.File == "" {
			h.m.mu.Lock()
			pos.File = h.m.file
			h.m.mu.Unlock()
		}
		v, _ := json.Marshal(pos)
		writes = []ingest.Write{{Key: h.m.posKey(), Value: v}}
	}
	if len(h.pending) == 0 && next == nil {
		return nil
	}
	h.m.live.Lock()
	if h.m.touched != nil {
		for _, k := range h.keys {
			h.m.touched[k] = true
		}
	}
	err := h.m.s.applyChanges(h.ctx, h.pending, writes)
	h.m.live.Unlock()
	if err != nil {
		return err
	}
	n := h.rows
	h.pending, h.keys, h.rows = h.pending[:0], h.keys[:0], 0
	if next != nil {
		h.m.mu.Lock()
		h.m.pos = pos
		h.m.mu.Unlock()
	}
	if n > 0 {
		h.m.s.applied(n, 0, time.Time{})
	}
	return nil
}

// applyChanges submits changes in order: runs of items together, each
// erasure alone; writes go with the last submission.
func (s *src) applyChanges(ctx context.Context, cs []change, writes []ingest.Write) error {
	if err := s.wait(ctx, len(cs)); err != nil {
		return err
	}
	var items []message.Item
	for i, c := range cs {
		last := i == len(cs)-1
		if c.erase != "" {
			if len(items) > 0 {
				if _, err := s.submit(ctx, items, nil); err != nil {
					return err
				}
				items = nil
			}
			var w []ingest.Write
			if last {
				w = writes
			}
			if _, err := s.mgr.in.DeleteUserWith(ctx, s.ws, c.erase, w); err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			if last {
				return nil
			}
			continue
		}
		items = append(items, c.items...)
	}
	if len(items) == 0 && len(writes) == 0 {
		return nil
	}
	_, err := s.submit(ctx, items, writes)
	return err
}

// setLag records lag measured by the source itself.
func (s *src) setLag(records int64, behind time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagRecs = records
	if behind <= 0 {
		s.lagSince = time.Time{}
	} else {
		s.lagSince = s.mgr.opts.Now().Add(-behind)
	}
}
