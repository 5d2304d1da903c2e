package source_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/source"
)

// segments over what the shop changes touch.
var shopSegments = map[string]string{
	"pro":    `{"trait":"plan","op":"eq","value":"pro"}`,
	"vip":    `{"trait":"vip","op":"eq","value":true}`,
	"buyer":  `{"event":"Order Placed"}`,
	"tiered": `{"trait":"tier","op":"exists"}`,
	"known":  `{"trait":"email","op":"exists"}`,
}

// run opens a server with one source, creates the segments, applies the
// changes one at a time through step (each waits until its change is
// applied) and returns the membership changes as "segment user change
// reason" lines, in order.
func runShop(t *testing.T, src config.Source, steps int, step func(i int, srv *server.Server)) []string {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = "write-key-1", "api-key-123", "admin-key-1"
	cfg.Sources = []config.Source{src}
	// The fixtures' events are of January 2026: keep them counted.
	cfg.Retention = config.Duration(20 * 365 * 24 * time.Hour)
	srv, err := server.Open(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ws, _ := srv.In.WorkspaceByName("default")
	for id, cond := range shopSegments {
		if _, err := srv.Seg.Create(context.Background(), ws, id, id, json.RawMessage(cond)); err != nil {
			t.Fatal(err)
		}
	}
	srv.Seg.WaitBuilds()
	for i := 0; i < steps; i++ {
		step(i, srv)
	}
	var out []string
	source.WaitFor(t, "the last changes to be durable", func() bool {
		upTo, _ := srv.Seg.Durable(ws.Num)
		cs, _, err := segment.ReadChanges(srv.St.DB(), ws.Num, 0, upTo, nil, 10000)
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %s %s %s", c.Segment, c.User, c.Change, c.Reason))
			// A change a row caused names the row's record (the formats'
			// origins differ: Kafka offsets or binlog positions).
			if (c.Reason == "trait" || c.Reason == "event") && !strings.HasPrefix(c.Origin, src.Kind) {
				t.Fatalf("%s change %+v: origin %q, want the %s record's", src.Kind, c, c.Origin, src.Kind)
			}
		}
		return len(out) > 0
	})
	return out
}

func sourceStatus(srv *server.Server) source.Status { return srv.Srcs.List("default")[0] }

// TestMembershipChangesAgree applies the shop changes one at a time as
// Maxwell records, as Debezium records and as SQL through the binlog
// source (the snapshot read through the bootstrap lane): the membership
// changes, in order and with their reasons, are the same.
func TestMembershipChangesAgree(t *testing.T) {
	got := map[string][]string{}
	for _, format := range []string{"maxwell", "debezium"} {
		c := source.NewCluster(t, format)
		recs := source.ReadFixture(t, format+".jsonl")
		src := config.Source{Name: format, Kind: "kafka", Workspace: "default", Brokers: c.ListenAddrs(), Topics: []string{format},
			Format: format, Tables: source.ShopTables()}
		got[format] = runShop(t, src, len(recs), func(i int, srv *server.Server) {
			source.Produce(t, c, format, recs[i])
			source.WaitFor(t, fmt.Sprintf("%s record %d", format, i), func() bool {
				p, _ := sourceStatus(srv).Position.(map[string]int64)
				return p[format+":0"] == int64(i+1)
			})
		})
	}

	db := source.StartMariaDB(t)
	db.Exec(source.ShopSchema()...)
	db.Exec(`INSERT INTO shop.users VALUES (3, 'cy@example.com', 'team', 0, '2026-01-03 00:00:00', 7.25, '[1,2]', 'hi')`)
	sql := []string{
		`INSERT INTO shop.users VALUES (1, 'ann@example.com', 'free', 0, '2026-01-01 10:00:00', 12.50, '{"lang":"en"}', NULL)`,
		`INSERT INTO shop.users VALUES (2, 'bob@example.com', 'free', 1, '2026-01-02 11:30:00', 0.00, '{}', 'x')`,
		`UPDATE shop.users SET plan = 'pro', vip = 1 WHERE id = 1`,
		`INSERT INTO shop.orders VALUES (10, 1, 30.00)`,
		`UPDATE shop.orders SET amount = 35.00 WHERE id = 10`,
		`INSERT INTO shop.subscriptions VALUES (1, 'gold')`,
		`INSERT INTO shop.subscriptions VALUES (2, 'silver')`,
		`DELETE FROM shop.subscriptions WHERE user_id = 1`,
		`DELETE FROM shop.users WHERE id = 2`,
		"bootstrap",
		`INSERT INTO shop.audit VALUES (1, 'unmapped table')`,
	}
	src := config.Source{Name: "shop", Kind: "mysql", Workspace: "default", Addr: db.Addr(), User: "root", Tables: source.ShopTables()}
	got["mysql"] = runShop(t, src, len(sql), func(i int, srv *server.Server) {
		if i == 0 {
			source.WaitFor(t, "the source following the binlog", func() bool { return sourceStatus(srv).Position != nil })
		}
		if sql[i] == "bootstrap" {
			if err := srv.Srcs.Bootstrap("default", "shop", "shop.users", "id = 3"); err != nil {
				t.Fatal(err)
			}
			source.WaitFor(t, "the bootstrap", func() bool {
				b := sourceStatus(srv).Bootstrap
				return b != nil && b.State == "done"
			})
			return
		}
		db.Exec(sql[i])
		c, err := client.Connect(db.Addr(), "root", "", "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Execute("SHOW MASTER STATUS")
		if err != nil {
			t.Fatal(err)
		}
		file, _ := res.GetString(0, 0)
		pos, _ := res.GetInt(0, 1)
		c.Close()
		want, _ := json.Marshal(map[string]any{"file": file, "pos": pos})
		source.WaitFor(t, fmt.Sprintf("statement %d in the binlog source", i), func() bool {
			b, _ := json.Marshal(sourceStatus(srv).Position)
			return string(b) == string(want)
		})
	})
	t.Logf("maxwell: %q", got["maxwell"])
	if len(got["maxwell"]) < 8 {
		t.Fatalf("only %d membership changes: the shop changes should make more", len(got["maxwell"]))
	}
	for _, other := range []string{"debezium", "mysql"} {
		if !reflect.DeepEqual(got[other], got["maxwell"]) {
			t.Errorf("membership changes differ:\n maxwell:  %q\n %s: %q", got["maxwell"], other, got[other])
		}
	}
}
