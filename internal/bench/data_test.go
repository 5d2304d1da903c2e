package bench

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// TestWalkAheadIsWalk checks that generating ahead on a goroutine hands
// the sink the same batches, in the same order, as Walk, and that a
// sink's error stops the walk and is returned.
func TestWalkAheadIsWalk(t *testing.T) {
	d := Data{Profiles: 300, Events: 5000, Seed: 3, InOrder: true}
	record := func(walk func(context.Context, int, Sink) (int, error), stopAfter int) ([]string, int, error) {
		var got []string
		sink := func(s string) error {
			got = append(got, s)
			if stopAfter > 0 && len(got) == stopAfter {
				return errors.New("sink full")
			}
			return nil
		}
		n, err := walk(context.Background(), 128, Sink{
			Profiles: func(_ context.Context, ps []Profile) error { return sink(fmt.Sprintf("P%v", ps)) },
			Events:   func(_ context.Context, es []Event, ps []Patch) error { return sink(fmt.Sprintf("E%v%v", es, ps)) },
		})
		return got, n, err
	}
	want, wn, err := record(d.Walk, 0)
	if err != nil || wn < 4000 {
		t.Fatalf("walk: %d events, %v", wn, err)
	}
	got, n, err := record(d.WalkAhead, 0)
	if err != nil || n != wn || !reflect.DeepEqual(got, want) {
		t.Fatalf("walk ahead: %d events (walk %d), %d batches (walk %d), equal %v, %v", n, wn, len(got), len(want), reflect.DeepEqual(got, want), err)
	}
	got, _, err = record(d.WalkAhead, 7)
	if err == nil || err.Error() != "sink full" || len(got) != 7 {
		t.Fatalf("a sink error: %d batches, %v", len(got), err)
	}
}
