package source

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a store and an ingester on an in-memory file system, with the
// workspace "default"; sources are opened over it and closed at the end.
type env struct {
	t   testing.TB
	fs  vfs.FS
	st  *store.Store
	in  *ingest.Ingester
	ws  *ingest.Workspace
	mgr *Manager
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem()}
	e.open()
	if _, _, err := e.in.CreateWorkspace(context.Background(), "default", ingest.Keys{}); err != nil {
		t.Fatal(err)
	}
	e.ws, _ = e.in.WorkspaceByName("default")
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	st, err := store.Open("", store.Options{FS: e.fs, CacheBytes: 8 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	in, err := ingest.New(st, ingest.Options{Limits: config.Default().Limits})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st, e.in = st, in
	e.ws, _ = in.WorkspaceByName("default")
}

// start opens a Manager with the given sources.
func (e *env) start(cfgs ...config.Source) *Manager {
	e.t.Helper()
	m, err := Open(cfgs, e.st, e.in, Options{Limits: config.Default().Limits, Registerer: prometheus.NewRegistry(),
		BackoffBase: 20 * time.Millisecond, BackoffCap: 200 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mgr = m
	return m
}

func (e *env) stopSources() {
	if e.mgr != nil {
		e.mgr.Close()
		e.mgr = nil
	}
}

func (e *env) close() {
	e.stopSources()
	if e.in != nil {
		if err := e.in.Close(); err != nil {
			e.t.Error(err)
		}
		e.st.Close()
		e.in = nil
	}
}

// restart closes everything and opens the same data again (a clean
// restart; crash restarts are tested with the real binary in e2e).
func (e *env) restart() {
	e.close()
	e.open()
}

// traits returns a user's traits, or nil when unknown.
func (e *env) traits(id string) map[string]any {
	e.t.Helper()
	n, ok, err := store.ResolveID(e.st.DB(), e.ws.Num, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		return nil
	}
	p, ok, err := store.ReadProfile(e.st.DB(), e.ws.Num, n)
	if err != nil || !ok {
		e.t.Fatalf("profile of %s: %v %v", id, ok, err)
	}
	return p.Traits
}

// events counts every stored event by name.
func (e *env) events() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	err := store.ScanEvents(context.Background(), e.st.DB(), e.ws.Num, func(ev store.StoredEvent) error {
		out[ev.Name]++
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) rejections() []*store.Rejection {
	e.t.Helper()
	r, err := store.Rejections(e.st.DB(), e.ws.Num, 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// status returns a source's status.
func (e *env) status(name string) Status {
	for _, s := range e.mgr.List("default") {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no source %q", name)
	return Status{}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRecords waits until a source has applied n records (since it was
// started) and is caught up.
func (e *env) waitRecords(name string, n int64) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("source %s applying %d records", name, n), 20*time.Second, func() bool {
		s := e.status(name)
		return s.Records >= n && s.LagRecords == 0
	})
}

func newCluster(t testing.TB, topic string, partitions int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.SeedTopics(int32(partitions), topic), kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes values to topic with a real producer, keyed so that
// records of one key stay in order on one partition.
func produce(t *testing.T, c *kfake.Cluster, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func rec(key, value string) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: []byte(value)} }
