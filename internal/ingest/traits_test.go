package ingest

import (
	"context"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
)

// TestUnchangedTraitsWriteNothing: an identify that repeats the traits the
// profile already has writes no profile and reports no change (SDKs send
// every identify in full); a changed value, or an unset, does.
func TestUnchangedTraitsWriteNothing(t *testing.T) {
	var mu sync.Mutex
	var changed []ProfileChange
	e := newEnvWith(t, Options{Limits: config.Default().Limits,
		OnApply: func(_ *Workspace, c *Changes, _ *pebble.Batch) error {
			mu.Lock()
			changed = append(changed, c.Profiles...)
			mu.Unlock()
			return nil
		}})
	g, ws := e.g, e.ws
	identify := func(traits map[string]any, unset ...string) int {
		mu.Lock()
		changed = nil
		mu.Unlock()
		m := &model.Message{Type: model.Identify, UserID: "u", Traits: traits, Unset: unset, Timestamp: t0, ReceivedAt: t0}
		if _, err := g.Submit(context.Background(), ws, "test", []message.Item{{Msg: m, Raw: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return len(changed)
	}
	traits := func() map[string]any {
		return map[string]any{"plan": "pro", "age": 31.0, "address": map[string]any{"city": "Paris"}, "tags": []any{"a", "b"}}
	}
	if n := identify(traits()); n != 1 {
		t.Fatalf("first identify: %d profile changes, want 1", n)
	}
	if n := identify(traits()); n != 0 {
		t.Fatalf("the same traits again: %d profile changes, want none", n)
	}
	tr := traits()
	tr["address"] = map[string]any{"city": "Lyon"}
	if n := identify(tr); n != 1 {
		t.Fatalf("a nested value changed: %d profile changes, want 1", n)
	}
	if n := identify(map[string]any{}, "tags"); n != 1 {
		t.Fatalf("an unset: %d profile changes, want 1", n)
	}
	if n := identify(map[string]any{}, "tags"); n != 0 {
		t.Fatalf("unsetting an absent trait: %d profile changes, want none", n)
	}
}
