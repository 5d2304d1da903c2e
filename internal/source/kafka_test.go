package source

import (
	"maps"
	"strings"
	"testing"

	"github.com/cohortdb/cohort/internal/config"
)

func segmentSource(name string, brokers []string) config.Source {
	return config.Source{Name: name, Kind: "kafka", Workspace: "default", Brokers: brokers, Topics: []string{"events"}, Format: "segment"}
}

// TestKafkaSegment feeds a topic of Segment records (single messages, a
// batch, a duplicate messageId, a malformed and an invalid record) through
// a source, then restarts it and replays the whole topic through a second
// source with no stored position: profiles and events come out the same,
// refused records are dead letters with their topic/partition/offset.
func TestKafkaSegment(t *testing.T) {
	c := newCluster(t, "events", 2)
	produce(t, c, "events",
		rec("u1", `{"type":"identify","userId":"u1","traits":{"plan":"pro","age":31}}`),
		rec("u1", `{"type":"track","userId":"u1","event":"Bought","properties":{"v":1}}`),
		rec("u1", `{"type":"track","userId":"u1","event":"Bought","properties":{"v":1}}`),
		rec("u1", `{"type":"track","userId":"u1","event":"Bought","properties":{"v":2}}`),
		rec("u2", `{"batch":[{"type":"track","userId":"u2","event":"Bought"},{"type":"identify","userId":"u2","traits":{"plan":"free"}},{"type":"track","userId":"u2","event":"Viewed","messageId":"m-1"}]}`),
		rec("u2", `{"type":"track","userId":"u2","event":"Viewed","messageId":"m-1"}`),
		rec("u3", `not json`),
		rec("u3", `{"type":"track","userId":"u3"}`),
	)
	e := newEnv(t)
	e.start(segmentSource("events", c.ListenAddrs()))
	e.waitRecords("events", 8)

	want := map[string]int{"Bought": 4, "Viewed": 1}
	check := func(when string) {
		t.Helper()
		if got := e.events(); !maps.Equal(got, want) {
			t.Errorf("%s: events %v, want %v", when, got, want)
		}
		if tr := e.traits("u1"); tr["plan"] != "pro" || tr["age"] != 31.0 {
			t.Errorf("%s: traits of u1 %v", when, tr)
		}
		if tr := e.traits("u2"); tr["plan"] != "free" {
			t.Errorf("%s: traits of u2 %v", when, tr)
		}
		if e.traits("u3") != nil {
			t.Errorf("%s: u3 exists though both its records were refused", when)
		}
	}
	check("first pass")
	rejs := e.rejections()
	if len(rejs) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(rejs), rejs)
	}
	for _, r := range rejs {
		if !strings.HasPrefix(r.Source, "kafka:events:") || !strings.Contains(r.Error, "kafka:events:") && !strings.Contains(r.Error, "event") {
			t.Errorf("dead letter %+v: want its origin kafka:events:<partition>:<offset>", r)
		}
	}
	if !strings.Contains(rejs[0].Error+rejs[1].Error, "not a JSON object") {
		t.Errorf("dead letters %q / %q: want the malformed record named as such", rejs[0].Error, rejs[1].Error)
	}
	pos := e.status("events").Position.(map[string]int64)
	if pos["events:0"]+pos["events:1"] != 8 {
		t.Errorf("position %v, want 8 records' offsets in all", pos)
	}

	// A restart resumes from the stored position: nothing is applied twice.
	e.restart()
	e.start(segmentSource("events", c.ListenAddrs()))
	produce(t, c, "events", rec("u1", `{"type":"track","userId":"u1","event":"Bought"}`))
	e.waitRecords("events", 1)
	want["Bought"]++
	check("after a restart")
	if s := e.status("events"); s.Records != 1 {
		t.Errorf("after a restart the source applied %d records, want only the new one", s.Records)
	}

	// Every record delivered again (no stored position, another group):
	// derived messageIds make each a duplicate.
	e.stopSources()
	replay := segmentSource("replay", c.ListenAddrs())
	e.start(replay)
	e.waitRecords("replay", 9)
	check("after redelivering every record")
}
