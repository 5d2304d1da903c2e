package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/message"
)

// kafkaRecord maps one Maxwell or Debezium record. Records of tables
// without a mapping, DDL, Maxwell's bootstrap markers and Debezium's
// tombstones and truncates yield nothing; a record that cannot be read is
// one rejected item.
func (m *mapper) kafkaRecord(format string, r *kgo.Record, origin string, received time.Time) change {
	var (
		rw  *row
		err error
	)
	switch format {
	case "maxwell":
		rw, err = decodeMaxwell(r.Value)
	case "debezium":
		rw, err = decodeDebezium(r.Value)
	default:
		err = fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return change{items: []message.Item{rejectedItem(origin, "", err, r.Value)}}
	}
	if rw == nil {
		return change{}
	}
	return m.change(rw, origin, origin, received, r.Value)
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// decodeMaxwell reads a Maxwell change event:
// {"database", "table", "type": insert|update|delete|bootstrap-insert,
// "ts": seconds, "data": {...}, "old": {changed columns' old values}}.
func decodeMaxwell(b []byte) (*row, error) {
	var e struct {
		Database string         `json:"database"`
		Table    string         `json:"table"`
		Type     string         `json:"type"`
		TS       json.Number    `json:"ts"`
		Data     map[string]any `json:"data"`
		Old      map[string]any `json:"old"`
	}
	if err := decodeJSON(b, &e); err != nil {
		return nil, fmt.Errorf("not a Maxwell JSON event: %w", err)
	}
	r := &row{table: e.Database + "." + e.Table}
	switch e.Type {
	case "insert":
		r.op, r.after = opInsert, e.Data
	case "bootstrap-insert":
		r.op, r.after = opRead, e.Data
	case "update":
		r.op, r.after = opUpdate, e.Data
		r.before = map[string]any{}
		for k, v := range e.Data {
			r.before[k] = v
		}
		r.changed = []string{}
		for k, v := range e.Old {
			r.before[k] = v
			r.changed = append(r.changed, k)
		}
	case "delete":
		r.op, r.before = opDelete, e.Data
	case "bootstrap-start", "bootstrap-complete", "table-create", "table-alter", "table-drop", "database-create", "database-drop":
		return nil, nil
	case "":
		return nil, fmt.Errorf("Maxwell event has no \"type\"")
	default:
		return nil, fmt.Errorf("Maxwell event type %q is not insert, update, delete or bootstrap-insert", e.Type)
	}
	if e.Database == "" || e.Table == "" {
		return nil, fmt.Errorf("Maxwell event has no \"database\" or \"table\"")
	}
	if (r.op == opDelete && r.before == nil) || (r.op != opDelete && r.after == nil) {
		return nil, fmt.Errorf("Maxwell %s event has no \"data\" object", e.Type)
	}
	if s, err := e.TS.Int64(); err == nil && s > 0 {
		r.ts = time.Unix(s, 0).UTC()
	}
	return r, nil
}

// decodeDebezium reads a Debezium change event, with or without its
// schema envelope: {"before", "after", "op": c|u|d|r, "ts_ms",
// "source": {"db", "table", "ts_ms"}}. An empty value (a tombstone) and
// truncates yield nothing.
func decodeDebezium(b []byte) (*row, error) {
	if len(bytes.TrimSpace(b)) == 0 || bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil, nil
	}
	type payload struct {
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
		Op     string         `json:"op"`
		TSms   json.Number    `json:"ts_ms"`
		Source struct {
			DB    string      `json:"db"`
			Table string      `json:"table"`
			TSms  json.Number `json:"ts_ms"`
		} `json:"source"`
	}
	var e struct {
		payload
		Payload *payload `json:"payload"`
	}
	if err := decodeJSON(b, &e); err != nil {
		return nil, fmt.Errorf("not a Debezium JSON event: %w", err)
	}
	p := e.payload
	if e.Payload != nil {
		p = *e.Payload
	}
	r := &row{table: p.Source.DB + "." + p.Source.Table, before: p.Before, after: p.After}
	switch p.Op {
	case "c":
		r.op = opInsert
	case "r":
		r.op = opRead
	case "u":
		r.op = opUpdate
	case "d":
		r.op = opDelete
	case "t", "m":
		return nil, nil
	case "":
		return nil, fmt.Errorf("Debezium event has no \"op\"")
	default:
		return nil, fmt.Errorf("Debezium op %q is not c, u, d or r", p.Op)
	}
	if p.Source.DB == "" || p.Source.Table == "" {
		return nil, fmt.Errorf("Debezium event has no \"source.db\" or \"source.table\"")
	}
	if (r.op == opDelete && r.before == nil) || (r.op != opDelete && r.after == nil) {
		return nil, fmt.Errorf("Debezium op %q event has no %q row", p.Op, map[bool]string{true: "before", false: "after"}[r.op == opDelete])
	}
	if r.op == opUpdate && r.before == nil {
		// Without before images every column counts as changed.
		r.before = map[string]any{}
	}
	ms := p.Source.TSms
	if ms == "" {
		ms = p.TSms
	}
	if v, err := ms.Int64(); err == nil && v > 0 {
		r.ts = time.UnixMilli(v).UTC()
	}
	return r, nil
}
