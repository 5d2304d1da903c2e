//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
)

// sourceAnswer is one source of GET /api/sources.
type sourceAnswer struct {
	Name       string           `json:"name"`
	State      string           `json:"state"`
	Position   map[string]int64 `json:"position"`
	LagRecords int64            `json:"lag_records"`
	Records    int64            `json:"records"`
	LastError  string           `json:"last_error"`
}

func (s *server) source(t *testing.T, name string) sourceAnswer {
	t.Helper()
	var a struct {
		Sources []sourceAnswer `json:"sources"`
	}
	s.getJSON(t, "/api/sources", &a)
	for _, src := range a.Sources {
		if src.Name == name {
			return src
		}
	}
	t.Fatalf("GET /api/sources has no source %q: %+v", name, a.Sources)
	return sourceAnswer{}
}

// consumed is the sum of a Kafka source's stored next offsets.
func (a sourceAnswer) consumed() int64 {
	var n int64
	for _, o := range a.Position {
		n += int64(o)
	}
	return n
}

// kafkaOracle is what the produced records should do, computed from the
// records alone.
type kafkaOracle struct {
	events map[string][]model.Event // user → events, in order
	traits map[string]map[string]any
	ids    map[string]bool // messageIds sent explicitly
}

// TestKafkaSourceSIGKILL kills the server with SIGKILL twice while its
// Kafka source consumes a topic of Segment records (single messages,
// batches, duplicated messageIds, invalid records), restarts it, and
// checks that every record's effect is there exactly once: each user's
// events and traits equal an oracle fed the records, and a segment's
// members equal the reference evaluator's.
func TestKafkaSourceSIGKILL(t *testing.T) {
	const (
		topic   = "events"
		records = 12000
		users   = 150
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	cluster, err := kfake.NewCluster(kfake.SeedTopics(3, topic), kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	ts := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	or := kafkaOracle{events: map[string][]model.Event{}, traits: map[string]map[string]any{}, ids: map[string]bool{}}
	var recs []*kgo.Record
	var sentIDs []string
	for i := 0; i < records; i++ {
		u := fmt.Sprintf("u%d", rng.IntN(users))
		at := ts.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		var v string
		switch k := rng.IntN(20); {
		case k < 13:
			v = fmt.Sprintf(`{"type":"track","userId":%q,"event":"Bought","timestamp":%q,"properties":{"i":%d}}`, u, at, i)
			or.events[u] = append(or.events[u], model.Event{Name: "Bought"})
		case k < 15:
			v = fmt.Sprintf(`{"type":"identify","userId":%q,"traits":{"n":%d}}`, u, i)
			if or.traits[u] == nil {
				or.traits[u] = map[string]any{}
			}
			or.traits[u]["n"] = float64(i)
		case k < 17:
			v = fmt.Sprintf(`{"batch":[{"type":"track","userId":%q,"event":"Viewed","timestamp":%q},{"type":"track","userId":%q,"event":"Viewed","timestamp":%q}]}`, u, at, u, at)
			or.events[u] = append(or.events[u], model.Event{Name: "Viewed"}, model.Event{Name: "Viewed"})
		case k < 19 && len(sentIDs) > 0 && rng.IntN(2) == 0:
			// A duplicate of a message sent before (same messageId, same
			// user): acknowledged and ignored.
			id := sentIDs[rng.IntN(len(sentIDs))]
			v = fmt.Sprintf(`{"type":"track","userId":%q,"event":"Bought","messageId":%q,"timestamp":%q}`, strings.Split(id, "/")[0], id, at)
			u = strings.Split(id, "/")[0]
		case k < 19:
			id := fmt.Sprintf("%s/%d", u, i)
			sentIDs = append(sentIDs, id)
			v = fmt.Sprintf(`{"type":"track","userId":%q,"event":"Bought","messageId":%q,"timestamp":%q}`, u, id, at)
			or.events[u] = append(or.events[u], model.Event{Name: "Bought"})
		default:
			v = fmt.Sprintf(`{"type":"track","userId":%q}`, u) // no event: rejected
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(u), Value: []byte(v)})
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "cohort.yaml")
	cfg := fmt.Sprintf("sources:\n  - name: events\n    kind: kafka\n    brokers: [%s]\n    topics: [%s]\n    format: segment\n    rate: 3000\n",
		strings.Join(cluster.ListenAddrs(), ", "), topic)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	const cond = `{"event":"Bought","count":{"op":"gte","value":60}}`
	srv := startServer(t, dir, "--config", cfgPath)
	status, body, err := mcDo(context.Background(), srv, http.MethodPost, "/api/segments", []byte(`{"id":"buyers","name":"buyers","condition":`+cond+`}`))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST /api/segments: %d %s %v", status, body, err)
	}
	for round := 1; round <= 2; round++ {
		// Kill it somewhere in the middle of the topic.
		at := int64(records * round / 3)
		at += int64(rng.IntN(records / 6))
		waitUntil(t, srv, fmt.Sprintf("the source consuming past offset %d in all", at), 60*time.Second, func() bool {
			return srv.source(t, "events").consumed() >= at
		})
		before := srv.source(t, "events").consumed()
		srv.kill(t)
		if before >= records {
			t.Fatalf("round %d: the source had consumed the whole topic before the kill: the test did not test a crash mid-stream", round)
		}
		t.Logf("round %d: SIGKILL at %d of %d records consumed", round, before, records)
		srv = startServer(t, dir, "--config", cfgPath)
		if got := srv.source(t, "events").consumed(); got < before {
			t.Fatalf("round %d: after the restart the stored position is %d records, before the kill it was %d", round, got, before)
		}
	}
	waitUntil(t, srv, "the source consuming the whole topic", 60*time.Second, func() bool {
		a := srv.source(t, "events")
		return a.consumed() == records && a.LagRecords == 0
	})

	for i := 0; i < users; i++ {
		u := fmt.Sprintf("u%d", i)
		evs, _ := srv.events(t, u)
		got := map[string]int{}
		for _, e := range evs {
			got[e.Event]++
		}
		want := map[string]int{}
		for _, e := range or.events[u] {
			want[e.Name]++
		}
		if got["Bought"] != want["Bought"] || got["Viewed"] != want["Viewed"] || len(got) > len(want) {
			t.Errorf("%s: events %v, want %v (each record's effect exactly once)", u, got, want)
		}
		if n, ok := or.traits[u]["n"]; ok {
			pr, _ := srv.user(t, u)
			if pr.Traits["n"] != n {
				t.Errorf("%s: trait n = %v, want %v (the last identify)", u, pr.Traits["n"], n)
			}
		}
	}

	node, err := condition.Parse([]byte(cond))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for u, evs := range or.events {
		if oracle.Match(node, oracle.Input{Events: evs}, time.Now()) {
			want[u] = true
		}
	}
	waitUntil(t, srv, "segment buyers matching the reference evaluator", 10*time.Second, func() bool {
		var a struct {
			Members []string `json:"members"`
		}
		srv.getJSON(t, "/api/segments/buyers/members?limit=100000", &a)
		if len(a.Members) != len(want) {
			return false
		}
		for _, m := range a.Members {
			if !want[m] {
				return false
			}
		}
		return true
	})
	// Operating the source over HTTP.
	for _, c := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/api/sources/events/pause", "", http.StatusOK, `"state":"paused"`},
		{"/api/sources/events/pause", "", http.StatusOK, `"state":"paused"`},
		{"/api/sources/events/resume", "", http.StatusOK, `"state":"running"`},
		{"/api/sources/nope/pause", "", http.StatusNotFound, `no such source`},
		{"/api/sources/events/bootstrap", `{"table":"shop.users"}`, http.StatusBadRequest, `only mysql sources`},
		{"/api/sources/events/bootstrap", `{}`, http.StatusBadRequest, `table`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		status, answer, err := mcDo(context.Background(), srv, http.MethodPost, c.path, body)
		if err != nil || status != c.status || !strings.Contains(string(answer), c.want) {
			t.Errorf("POST %s %s: %d %s %v, want %d with %s", c.path, c.body, status, answer, err, c.status, c.want)
		}
	}
	var rej struct {
		Rejections []json.RawMessage `json:"rejections"`
	}
	srv.getJSON(t, "/api/rejections?limit=1000", &rej)
	if len(rej.Rejections) == 0 {
		t.Errorf("no dead letters, though invalid records were sent")
	}
	srv.stop(t)
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, srv *server, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		if srv.exited() {
			t.Fatalf("%s: %s exited: %v", what, srv.name, srv.waitErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
