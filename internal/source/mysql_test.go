package source

import (
	"testing"
	"time"

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
