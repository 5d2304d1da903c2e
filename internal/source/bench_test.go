package source

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// benchEnv is an env on disk (every submission fsynced), with an OnApply
// hook.
func benchEnv(b *testing.B, onApply func(*ingest.Workspace, *ingest.Changes)) *env {
	b.Helper()
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	o := ingest.Options{Limits: config.Default().Limits}
	if onApply != nil {
		o.OnApply = func(w *ingest.Workspace, c *ingest.Changes, _ *pebble.Batch) error { onApply(w, c); return nil }
	}
	in, err := ingest.New(st, o)
	if err != nil {
		b.Fatal(err)
	}
	ws, _, err := in.CreateWorkspace(context.Background(), "default", ingest.Keys{})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, st: st, in: in, ws: ws}
	b.Cleanup(e.close)
	return e
}

// BenchmarkKafkaSegment measures the Kafka segment source's throughput:
// records (one track message each, 4 partitions) from the topic into
// durable state, WAL synced.
func BenchmarkKafkaSegment(b *testing.B) {
	c := newCluster(b, "events", 4)
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "events", Key: []byte(fmt.Sprintf("u%d", i%10000)),
			Value: []byte(fmt.Sprintf(`{"type":"track","userId":"u%d","event":"Viewed","properties":{"i":%d,"page":"/home"}}`, i%10000, i))}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	e := benchEnv(b, nil)
	b.ResetTimer()
	start := time.Now()
	m, err := Open([]config.Source{segmentSource("events", c.ListenAddrs())}, e.st, e.in, Options{Limits: config.Default().Limits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for {
		s := m.List("default")[0]
		if s.Records >= int64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkBinlogLatency inserts rows into MariaDB at 5,000 rows/s (100
// statements of 50 rows a second), each carrying its statement's NOW(6),
// and measures the time from there to the ingestion commit that applies
// the row (where membership is computed): p50 and p99.
func BenchmarkBinlogLatency(b *testing.B) {
	db := startMariaDBB(b)
	db.exec(append(shopSchema, "CREATE TABLE shop.hits (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, at VARCHAR(40))")...)
	var mu sync.Mutex
	var lat []time.Duration
	e := benchEnv(b, func(w *ingest.Workspace, c *ingest.Changes) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range c.Profiles {
			if s, ok := p.New["at"].(string); ok {
				if at, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.Local); err == nil {
					lat = append(lat, now.Sub(at))
				}
			}
		}
	})
	cfg := mysqlSourceConfig(db)
	cfg.Tables = []config.Table{{Name: "shop.hits", UserID: "user_id", Columns: map[string]string{"at": "at"}}}
	m, err := Open([]config.Source{cfg}, e.st, e.in, Options{Limits: config.Default().Limits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for m.List("default")[0].Position == nil {
		time.Sleep(10 * time.Millisecond)
	}
	conn := db.conn()
	defer conn.Close()
	const perStmt = 50
	stmts := max(1, b.N/perStmt)
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond) // 100 statements/s
	defer tick.Stop()
	for i := 0; i < stmts; i++ {
		<-tick.C
		q := "INSERT INTO shop.hits (user_id, at) VALUES "
		for j := 0; j < perStmt; j++ {
			if j > 0 {
				q += ","
			}
			q += fmt.Sprintf("(%d, DATE_FORMAT(NOW(6), '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))", (i*perStmt+j)%20000)
		}
		if _, err := conn.Execute(q); err != nil {
			b.Fatal(err)
		}
	}
	p50, p99 := awaitLatencies(b, &mu, &lat, stmts*perStmt, 60*time.Second)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
}

// BenchmarkLiveDuringBootstrap bootstraps 1,000,000 rows (at the default
// 20,000 rows/s) while live inserts arrive through the binlog at 500
// rows/s (50 statements of 10 rows a second), and measures the live rows'
// latency from their statement's NOW(6) to the ingestion commit that
// applies them, while the bootstrap runs: p50 and p99. b.N is ignored
// beyond 1: one bootstrap is the measurement.
func BenchmarkLiveDuringBootstrap(b *testing.B) {
	const rows = 1000000
	db := startMariaDBB(b)
	db.exec(append(shopSchema, "CREATE TABLE shop.hits (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, at VARCHAR(40))",
		fmt.Sprintf("INSERT INTO shop.subscriptions SELECT seq, CONCAT('old', seq) FROM shop.seq_1_to_%d", rows))...)
	var mu sync.Mutex
	var lat []time.Duration
	e := benchEnv(b, func(w *ingest.Workspace, c *ingest.Changes) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range c.Profiles {
			if s, ok := p.New["at"].(string); ok && (p.Old == nil || p.Old["at"] != s) {
				if at, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.Local); err == nil {
					lat = append(lat, now.Sub(at))
				}
			}
		}
	})
	cfg := mysqlSourceConfig(db)
	cfg.Tables = append(cfg.Tables, config.Table{Name: "shop.hits", UserID: "user_id", Columns: map[string]string{"at": "at"}})
	m, err := Open([]config.Source{cfg}, e.st, e.in, Options{Limits: config.Default().Limits})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for m.List("default")[0].Position == nil {
		time.Sleep(10 * time.Millisecond)
	}
	conn := db.conn()
	defer conn.Close()
	b.ResetTimer()
	start := time.Now()
	if err := m.Bootstrap("default", "shop", "shop.subscriptions", ""); err != nil {
		b.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for i := 0; m.List("default")[0].Bootstrap.State == "running"; i++ {
		<-tick.C
		q := "INSERT INTO shop.hits (user_id, at) VALUES "
		for j := 0; j < 10; j++ {
			if j > 0 {
				q += ","
			}
			q += fmt.Sprintf("(%d, DATE_FORMAT(NOW(6), '%%Y-%%m-%%d %%H:%%i:%%s.%%f'))", 2000000+(i*10+j)%5000)
		}
		if _, err := conn.Execute(q); err != nil {
			b.Fatal(err)
		}
		sent += 10
	}
	took := time.Since(start)
	if st := m.List("default")[0].Bootstrap; st.State != "done" || st.Done != rows {
		b.Fatalf("bootstrap %+v", st)
	}
	p50, p99 := awaitLatencies(b, &mu, &lat, sent, 30*time.Second)
	b.ReportMetric(float64(rows)/took.Seconds(), "bootstrap-rows/s")
	b.ReportMetric(p50, "live-p50-ms")
	b.ReportMetric(p99, "live-p99-ms")
}

// awaitLatencies waits (up to timeout) until want latencies were recorded
// in *lat, stops the timer and answers their p50 and p99 in milliseconds;
// fewer than want fails the benchmark.
func awaitLatencies(b *testing.B, mu *sync.Mutex, lat *[]time.Duration, want int, timeout time.Duration) (p50, p99 float64) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mu.Lock()
		n := len(*lat)
		mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling a deadline
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(*lat) < want {
		b.Fatalf("%d of %d rows applied", len(*lat), want)
	}
	l := slices.Clone(*lat)
	slices.Sort(l)
	return float64(l[len(l)/2].Microseconds()) / 1000, float64(l[len(l)*99/100].Microseconds()) / 1000
}
