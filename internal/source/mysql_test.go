package source

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/cohortdb/cohort/internal/config"
)

var shopSchema = []string{
	"CREATE DATABASE shop",
	"CREATE TABLE shop.users (id INT PRIMARY KEY, email VARCHAR(100), plan VARCHAR(20), vip TINYINT(1), signup DATETIME, balance DECIMAL(10,2), prefs JSON, note VARCHAR(20))",
	"CREATE TABLE shop.orders (id INT PRIMARY KEY, user_id INT, amount DECIMAL(10,2))",
	"CREATE TABLE shop.subscriptions (user_id INT PRIMARY KEY, tier VARCHAR(20))",
	"CREATE TABLE shop.audit (id INT PRIMARY KEY, what VARCHAR(50))",
}

func mysqlSourceConfig(db *mariaDB) config.Source {
	return config.Source{Name: "shop", Kind: "mysql", Workspace: "default", Addr: db.addr(), User: "root", Tables: shopTables()}
}

// TestBinlogMatchesFixtures makes, by SQL against MariaDB, the changes the
// Maxwell and Debezium fixtures describe (the snapshot read through the
// bootstrap lane) and checks the binlog source gives the same profiles and
// events as those formats do (TestChangeFormats).
func TestBinlogMatchesFixtures(t *testing.T) {
	db := startMariaDB(t)
	db.exec(shopSchema...)
	db.exec(`INSERT INTO shop.users VALUES (3, 'cy@example.com', 'team', 0, '2026-01-03 00:00:00', 7.25, '[1,2]', 'hi')`)
	e := newEnv(t)
	e.start(mysqlSourceConfig(db))
	waitFor(t, "the source following the binlog", 20*time.Second, func() bool { return e.status("shop").Position != nil })
	db.exec(
		`INSERT INTO shop.users VALUES (1, 'ann@example.com', 'free', 0, '2026-01-01 10:00:00', 12.50, '{"lang":"en"}', NULL)`,
		`INSERT INTO shop.users VALUES (2, 'bob@example.com', 'free', 1, '2026-01-02 11:30:00', 0.00, '{}', 'x')`,
		`UPDATE shop.users SET plan = 'pro', vip = 1 WHERE id = 1`,
		`INSERT INTO shop.orders VALUES (10, 1, 30.00)`,
		`UPDATE shop.orders SET amount = 35.00 WHERE id = 10`,
		`INSERT INTO shop.subscriptions VALUES (1, 'gold'), (2, 'silver')`,
		`DELETE FROM shop.subscriptions WHERE user_id = 1`,
		`DELETE FROM shop.users WHERE id = 2`,
		`INSERT INTO shop.audit VALUES (1, 'unmapped table')`,
	)
	if err := e.mgr.Bootstrap("default", "shop", "shop.users", "id = 3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the binlog's 9 row changes and the bootstrap", 20*time.Second, func() bool {
		s := e.status("shop")
		return s.Records >= 9 && s.Bootstrap != nil && s.Bootstrap.State == "done"
	})
	if b := e.status("shop").Bootstrap; b.Done != 1 || b.Total != 1 {
		t.Errorf("bootstrap progress %+v, want 1 of 1", b)
	}
	checkShop(t, e, "binlog")
	if rejs := e.rejections(); len(rejs) != 0 {
		t.Errorf("dead letters %s, want none", mustJSON(rejs))
	}
}

// TestBinlogOutage shuts MariaDB down for 10 s: the source reports the
// error and backs off, and once the server is back it recovers by itself
// with every row change applied, those made just before the outage too.
func TestBinlogOutage(t *testing.T) {
	db := startMariaDB(t)
	db.exec(shopSchema...)
	e := newEnv(t)
	e.start(mysqlSourceConfig(db))
	waitFor(t, "the source following the binlog", 20*time.Second, func() bool { return e.status("shop").Position != nil })
	for i := 1; i <= 20; i++ {
		db.exec(fmt.Sprintf(`INSERT INTO shop.subscriptions VALUES (%d, 'tier%d')`, i, i))
	}
	db.stop()
	down := time.Now()
	waitFor(t, "the source reporting the outage", 20*time.Second, func() bool {
		s := e.status("shop")
		return s.State == StateBackoff && s.LastError != ""
	})
	t.Logf("reported: %s", e.status("shop").LastError)
	// The outage lasts its 10 s (the scenario's length).
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	db.start()
	db.exec(`UPDATE shop.subscriptions SET tier = 'after' WHERE user_id = 7`, `INSERT INTO shop.subscriptions VALUES (21, 'tier21')`)
	waitFor(t, "recovery", 60*time.Second, func() bool {
		tr := e.traits("21")
		return tr != nil && e.status("shop").State == StateRunning
	})
	for i := 1; i <= 21; i++ {
		want := fmt.Sprintf("tier%d", i)
		if i == 7 {
			want = "after"
		}
		if got := e.traits(fmt.Sprint(i))["tier"]; got != want {
			t.Errorf("user %d: tier %v, want %s", i, got, want)
		}
	}
}

// TestBootstrapWithLiveUpdates backfills 100,000 rows (90,000 of them
// match the WHERE clause) through the bootstrap lane while live updates
// hit the same rows through the binlog: every row ends with its newest
// values, and rows outside the WHERE clause only have what the live lane
// brought.
func TestBootstrapWithLiveUpdates(t *testing.T) {
	const rows = 100000
	db := startMariaDB(t)
	db.exec(shopSchema...)
	db.exec(fmt.Sprintf(`INSERT INTO shop.subscriptions SELECT seq, CONCAT('old', seq) FROM shop.seq_1_to_%d`, rows))
	e := newEnv(t)
	cfg := mysqlSourceConfig(db)
	cfg.BootstrapRowsPerSecond = 50000
	e.start(cfg)
	waitFor(t, "the source following the binlog", 20*time.Second, func() bool { return e.status("shop").Position != nil })
	if err := e.mgr.Bootstrap("default", "shop", "shop.subscriptions", "user_id % 10 <> 0"); err != nil {
		t.Fatal(err)
	}
	if err := e.mgr.Bootstrap("default", "shop", "shop.subscriptions", ""); !errors.Is(err, ErrBusy) {
		t.Errorf("a second bootstrap while one runs: %v, want ErrBusy", err)
	}
	// Live updates while the bootstrap runs: each round updates rows
	// spread over the whole key range, some the bootstrap has not reached.
	updated := 0
	for round := 0; ; round++ {
		b := e.status("shop").Bootstrap
		if b.State != "running" {
			break
		}
		db.exec(fmt.Sprintf(`UPDATE shop.subscriptions SET tier = CONCAT('live', %d) WHERE user_id %% 997 = %d`, round, round%997))
		updated++
	}
	if b := e.status("shop").Bootstrap; b.State != "done" || b.Total != rows*9/10 || b.Done != b.Total {
		t.Fatalf("bootstrap %+v, want done with %d of %d", b, rows*9/10, rows*9/10)
	}
	if updated < 2 {
		t.Fatalf("only %d live updates ran during the bootstrap: the test did not test concurrency", updated)
	}
	t.Logf("%d live update statements during the bootstrap", updated)
	// The live lane is caught up when a marker row arrives.
	db.exec(`INSERT INTO shop.subscriptions VALUES (0, 'marker')`)
	waitFor(t, "the live lane catching up", 30*time.Second, func() bool { return e.traits("0") != nil })

	c, err := client.Connect(db.addr(), "root", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Execute(`SELECT user_id, tier FROM shop.subscriptions WHERE user_id > 0`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	bad := 0
	for i := 0; i < res.RowNumber(); i++ {
		id, _ := res.GetInt(i, 0)
		tier, _ := res.GetString(i, 1)
		got := e.traits(fmt.Sprint(id))
		want := tier
		if id%10 == 0 && strings.HasPrefix(tier, "old") {
			want = "" // outside the WHERE clause and never changed live
		}
		if g, _ := got["tier"].(string); g != want {
			if bad++; bad <= 10 {
				t.Errorf("user %d: tier %q, want %q", id, g, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d rows wrong", bad, res.RowNumber())
	}
}

// TestDerivedTrait keeps a trait computed by SQL (a user's order total)
// current as rows of its table are inserted, updated and deleted.
func TestDerivedTrait(t *testing.T) {
	db := startMariaDB(t)
	db.exec(shopSchema...)
	e := newEnv(t)
	cfg := mysqlSourceConfig(db)
	cfg.Derived = []config.Derived{{Trait: "order_total", Query: "SELECT SUM(amount) FROM shop.orders WHERE user_id = ?", Tables: []string{"shop.orders"}}}
	e.start(cfg)
	waitFor(t, "the source following the binlog", 20*time.Second, func() bool { return e.status("shop").Position != nil })
	total := func(id string) any { return e.traits(id)["order_total"] }
	db.exec(`INSERT INTO shop.orders VALUES (1, 5, 10.50), (2, 5, 4.50), (3, 6, 1.00)`)
	waitFor(t, "order_total after inserts", 20*time.Second, func() bool { return total("5") == 15.0 && total("6") == 1.0 })
	db.exec(`UPDATE shop.orders SET amount = 20 WHERE id = 2`)
	waitFor(t, "order_total after an update", 20*time.Second, func() bool { return total("5") == 30.5 })
	db.exec(`DELETE FROM shop.orders WHERE user_id = 6`)
	waitFor(t, "order_total unset after the last order is deleted", 20*time.Second, func() bool {
		_, ok := e.traits("6")["order_total"]
		return !ok
	})
}
