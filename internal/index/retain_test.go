package index

import (
	"fmt"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
)

// TestRetainFreesAndCounts: Retain removes the events before the horizon
// and those of deleted profiles from the columns (memory, not only
// visibility), reports the live roots that lost visible events, and the
// property value counts follow additions, deletions and retention.
func TestRetainFreesAndCounts(t *testing.T) {
	x := New()
	day := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var c ingest.Changes
	for n := range uint32(4) {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprint("u", n), New: map[string]any{}})
		for d := range 3 { // one event a day for three days
			color := "red"
			if n == 3 {
				color = "blue"
			}
			c.Events = append(c.Events, ingest.EventAdded{Num: n, Name: "View", Timestamp: day.Add(time.Duration(d) * 24 * time.Hour),
				Properties: map[string]any{"color": color}})
		}
	}
	x.Apply(&c)
	top := func() string { return fmt.Sprint(x.TopEventValues("View", "color", 10)) }
	if got := top(); got != "[{red 9} {blue 3}]" {
		t.Fatalf("counts %s", got)
	}
	x.Apply(&ingest.Changes{Deleted: []uint32{2}, Profiles: []ingest.ProfileChange{{Num: 2, OldID: "u2", Old: map[string]any{}}}})
	if got := top(); got != "[{red 6} {blue 3}]" {
		t.Fatalf("after deleting u2: %s", got)
	}
	lost := x.Retain(day.Add(24 * time.Hour)) // the first day goes
	if got := fmt.Sprint(lost["View"].ToArray()); got != "[0 1 3]" {
		t.Errorf("lost roots %s, want the live profiles with a first-day event", got)
	}
	col := x.events["View"]
	if len(col.prof) != 6 || len(col.ts) != 6 || col.props["color"].ids.len() != 6 {
		t.Errorf("column holds %d events, want 6 (2 days × 3 live profiles)", len(col.prof))
	}
	if _, ok := col.byProf[2]; ok {
		t.Error("the deleted profile's events are still in the column")
	}
	if got := top(); got != "[{red 4} {blue 2}]" {
		t.Errorf("after retention: %s", got)
	}
	// Chains still link each profile's remaining events.
	n := 0
	x.EachEvent(3, "View", func(Event) { n++ })
	if n != 2 {
		t.Errorf("profile 3 has %d events after retention, want 2", n)
	}
	if lost := x.Retain(day); len(lost) != 0 {
		t.Errorf("moving the horizon back dropped %v", lost)
	}
	if lost := x.Retain(day.Add(72 * time.Hour)); lost["View"].GetCardinality() != 3 || len(x.events) != 0 {
		t.Errorf("retaining past every event: lost %v, columns %d", lost, len(x.events))
	}
}
