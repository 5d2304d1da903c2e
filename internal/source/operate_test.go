package source

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaPauseResumeOutage pauses a source (records produced meanwhile
// wait), resumes it, then makes the broker unreachable for 10 s: the
// source reports the error and backs off, and recovers by itself with
// every record applied once.
func TestKafkaPauseResumeOutage(t *testing.T) {
	c := newCluster(t, "events", 1)
	e := newEnv(t)
	e.start(segmentSource("events", c.ListenAddrs()))
	track := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"type":"track","userId":"u1","event":"E","messageId":"m%d"}`, i))
	}
	produce(t, c, "events", rec("u1", string(track(0))))
	e.waitRecords("events", 1)

	if err := e.mgr.Pause("default", "events"); err != nil {
		t.Fatal(err)
	}
	if s := e.status("events"); s.State != StatePaused {
		t.Fatalf("state %s after pause", s.State)
	}
	produce(t, c, "events", rec("u1", string(track(1))))
	if err := e.mgr.Pause("default", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("pausing an unknown source: %v", err)
	}
	if n := e.events()["E"]; n != 1 {
		t.Errorf("%d events while paused, want 1", n)
	}
	if err := e.mgr.Resume("default", "events"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record produced while paused", 20*time.Second, func() bool { return e.events()["E"] == 2 })

	// The broker goes away: every request is refused (its connection
	// closed) for 10 s.
	down := time.Now()
	c.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if time.Since(down) > 10*time.Second {
			c.DropControl()
			return nil, nil, false
		}
		return nil, errors.New("broker down"), true
	})
	waitFor(t, "the source reporting the outage", 20*time.Second, func() bool {
		s := e.status("events")
		return s.State == StateBackoff && strings.Contains(s.LastError, "broker")
	})
	// The outage lasts its 10 s (this is the scenario's length, not a
	// wait for something to happen).
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	produce(t, c, "events", rec("u1", string(track(2))), rec("u1", string(track(3))))
	waitFor(t, "recovery after the outage", 40*time.Second, func() bool {
		s := e.status("events")
		return e.events()["E"] == 4 && s.State == StateRunning && s.LastError == ""
	})
}
