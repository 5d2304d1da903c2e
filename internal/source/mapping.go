package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
)

// op is what happened to a row.
type op int

const (
	opInsert op = iota
	opUpdate
	opDelete
	opRead // a snapshot copy (Debezium "r", Maxwell bootstrap-insert, the bootstrap lane)
)

// row is one row change, whatever stream it came from.
type row struct {
	table         string // "database.table"
	op            op
	before, after map[string]any
	// changed lists the columns an update changed when the stream says so
	// (Maxwell's "old"); nil: those whose values differ between before and
	// after.
	changed []string
	// types are column types the stream carries (the binlog's schema);
	// a table's configured types win.
	types map[string]string
	ts    time.Time
}

// tableMap is one table's mapping.
type tableMap struct {
	cfg config.Table
}

// mapper turns row changes into changes of profiles, per table.
type mapper struct {
	tables map[string]*tableMap
}

func newMapper(tables []config.Table) (*mapper, error) {
	m := &mapper{tables: map[string]*tableMap{}}
	for _, t := range tables {
		if t.As == "" {
			t.As = "traits"
		}
		if t.OnDelete == "" {
			t.OnDelete = "unset"
		}
		if t.Event == "" {
			_, t.Event, _ = strings.Cut(t.Name, ".")
		}
		m.tables[t.Name] = &tableMap{cfg: t}
	}
	return m, nil
}

// column returns the trait (or property) name of a column, and whether it
// is mapped at all.
func (t *tableMap) column(col string) (string, bool) {
	if len(t.cfg.Columns) == 0 {
		return col, col != t.cfg.UserID
	}
	name, ok := t.cfg.Columns[col]
	return name, ok
}

// mapped is the table's mapped columns of r, converted, with their
// trait names; nulls are listed apart (they unset).
func (t *tableMap) mapped(r *row, vals map[string]any, cols []string) (set map[string]any, nulls []string) {
	set = map[string]any{}
	for _, col := range cols {
		name, ok := t.column(col)
		if !ok {
			continue
		}
		v, present := vals[col]
		if !present {
			continue
		}
		if v == nil {
			nulls = append(nulls, name)
			continue
		}
		ty := t.cfg.Types[col]
		if ty == "" {
			ty = r.types[col]
		}
		set[name] = convert(v, ty)
	}
	slices.Sort(nulls)
	return set, nulls
}

// userID reads the row's user id.
func (t *tableMap) userID(vals map[string]any) (string, error) {
	v, ok := vals[t.cfg.UserID]
	if !ok || v == nil {
		return "", fmt.Errorf("row of %s has no value in its user id column %q", t.cfg.Name, t.cfg.UserID)
	}
	id := idString(v)
	if id == "" {
		return "", fmt.Errorf("row of %s has an empty user id in column %q", t.cfg.Name, t.cfg.UserID)
	}
	return id, nil
}

// userIDs are the user ids a row change concerns (before and after, when
// an update moved the row to another user).
func (m *mapper) userIDs(r *row) []string {
	t, ok := m.tables[r.table]
	if !ok {
		return nil
	}
	var out []string
	for _, vals := range []map[string]any{r.before, r.after} {
		if id, err := t.userID(vals); err == nil && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// change maps one row change. A table without a mapping yields nothing.
// The message gets id msgID; origin names the row in the dead-letter log.
func (m *mapper) change(r *row, origin, msgID string, received time.Time, raw []byte) change {
	t, ok := m.tables[r.table]
	if !ok {
		return change{}
	}
	reject := func(err error) change {
		if raw == nil {
			raw, _ = json.Marshal(map[string]any{"table": r.table, "before": r.before, "after": r.after})
		}
		return change{items: []message.Item{rejectedItem(origin, msgID, err, raw)}}
	}
	vals := r.after
	if r.op == opDelete {
		vals = r.before
	}
	uid, err := t.userID(vals)
	if err != nil {
		return reject(err)
	}
	ts := r.ts
	if ts.IsZero() {
		ts = received
	}
	msg := &model.Message{Type: model.Identify, MessageID: msgID, UserID: uid, Timestamp: ts, ReceivedAt: received}
	if t.cfg.As == "events" {
		if r.op != opInsert && r.op != opRead {
			return change{} // an event happened once: later changes of its row are not events
		}
		props, _ := t.mapped(r, vals, slices.Sorted(maps.Keys(vals)))
		msg.Type, msg.Event, msg.Properties = model.Track, t.cfg.Event, props
	} else {
		switch r.op {
		case opInsert, opRead:
			msg.Traits, _ = t.mapped(r, vals, slices.Sorted(maps.Keys(vals)))
		case opUpdate:
			cols := r.changed
			if cols == nil {
				cols = diff(r.before, r.after)
			}
			msg.Traits, msg.Unset = t.mapped(r, vals, cols)
			if len(msg.Traits) == 0 && len(msg.Unset) == 0 {
				return change{} // no mapped column changed
			}
		case opDelete:
			if t.cfg.OnDelete == "erase" {
				return change{erase: uid}
			}
			set, nulls := t.mapped(r, vals, slices.Sorted(maps.Keys(vals)))
			msg.Unset = append(slices.Sorted(maps.Keys(set)), nulls...)
			slices.Sort(msg.Unset)
		}
		if len(msg.Traits) == 0 {
			msg.Traits = nil
		}
	}
	if raw == nil {
		raw = rowJSON(r)
	}
	msg.Raw = raw
	return change{items: []message.Item{{Index: 0, MessageID: msgID, Msg: msg, Raw: raw, Origin: origin}}}
}

// rejectedItem is a record or row refused alone, for the dead-letter log.
func rejectedItem(origin, msgID string, err error, raw []byte) message.Item {
	return message.Item{Index: -1, MessageID: msgID, Err: fmt.Errorf("%s: %w", origin, err), Raw: raw, Origin: origin}
}

func rowJSON(r *row) []byte {
	b, _ := json.Marshal(map[string]any{"table": r.table, "op": [...]string{"insert", "update", "delete", "read"}[r.op], "before": r.before, "after": r.after})
	return b
}

// diff lists the columns whose values differ between two versions of a row.
func diff(before, after map[string]any) []string {
	var out []string
	for col, v := range after {
		if w, ok := before[col]; !ok || !equalValue(v, w) {
			out = append(out, col)
		}
	}
	slices.Sort(out)
	return out
}

func equalValue(a, b any) bool {
	ab, err1 := json.Marshal(normalize(a))
	bb, err2 := json.Marshal(normalize(b))
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// idString renders a user id column's value.
func idString(v any) string {
	switch x := normalize(v).(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// normalize turns a decoded column value into a JSON-like one: integers
// and json.Numbers become float64 (integers beyond 2^53 stay exact as
// json.Number), byte slices strings.
func normalize(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		if f, err := x.Float64(); err == nil && (math.Abs(f) < 1<<53 || strings.ContainsAny(x.String(), ".eE")) {
			return f
		}
		return x
	}
	return v
}

// convert maps a column value to a trait value by its column type:
// DATETIME, TIMESTAMP and DATE become RFC 3339 date-times (UTC), DECIMAL a
// number, TINYINT(1) a boolean, JSON an object (or whatever JSON value it
// holds). A value that does not fit its type is kept as it is.
func convert(v any, ty string) any {
	v = normalize(v)
	switch ty {
	case "datetime", "timestamp", "date":
		if t, ok := toTime(v, ty); ok {
			return t.UTC().Format(time.RFC3339Nano)
		}
	case "decimal", "number":
		switch x := v.(type) {
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f
			}
		case json.Number:
			if f, err := x.Float64(); err == nil {
				return f
			}
		}
	case "boolean":
		switch x := v.(type) {
		case float64:
			return x != 0
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b
			}
		}
	case "json":
		if s, ok := v.(string); ok {
			var out any
			if err := json.Unmarshal([]byte(s), &out); err == nil {
				return out
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return idString(v)
		}
	}
	if n, ok := v.(json.Number); ok {
		return n.String()
	}
	return v
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

// toTime reads a date-time column: text in MySQL's or RFC 3339's layout
// (without a zone: UTC), or a number as Debezium sends them (DATE: days
// since the epoch; DATETIME: milliseconds, or microseconds for DATETIME(6)).
func toTime(v any, ty string) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, x); err == nil {
				return t, true
			}
		}
	case float64:
		switch {
		case ty == "date" && math.Abs(x) < 1e6:
			return time.Unix(int64(x)*86400, 0), true
		case math.Abs(x) < 1e14:
			return time.UnixMilli(int64(x)), true
		default:
			return time.UnixMicro(int64(x)), true
		}
	case time.Time:
		return x, true
	}
	return time.Time{}, false
}
