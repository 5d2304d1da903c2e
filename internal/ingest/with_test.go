package ingest

import (
	"context"
	"testing"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// TestSubmitWithCommitsWrites checks the hook sources use to store their
// position: the writes are visible exactly when the items' effects are,
// rejected items carry their own origin, and Unset removes traits.
func TestSubmitWithCommitsWrites(t *testing.T) {
	e := newEnv(t, config.Default().Limits)
	ctx := context.Background()
	items := []message.Item{
		{Index: 0, MessageID: "a", Msg: &model.Message{Type: model.Identify, MessageID: "a", UserID: "u1",
			Traits: map[string]any{"plan": "pro", "age": 30.0}, Timestamp: t0, ReceivedAt: t0}, Raw: []byte(`{}`)},
		{Index: 1, Err: errString("bad row"), Raw: []byte(`{"x":1}`), Origin: "kafka:t:0:7"},
	}
	key := []byte("\x00test-position")
	res, err := e.g.SubmitWith(ctx, e.ws, "kafka:t", items, []Write{{Key: key, Value: []byte("7")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || len(res.Rejected) != 1 {
		t.Fatalf("result %+v, want 1 accepted and 1 rejected", res)
	}
	v, closer, err := e.st.DB().Get(key)
	if err != nil {
		t.Fatalf("position not written: %v", err)
	}
	if string(v) != "7" {
		t.Errorf("position %q, want 7", v)
	}
	closer.Close()
	rejs, err := store.Rejections(e.st.DB(), e.ws.Num, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejs) != 1 || rejs[0].Source != "kafka:t:0:7" {
		t.Fatalf("rejections %+v, want one with source kafka:t:0:7", rejs)
	}

	e.send(&model.Message{Type: model.Identify, UserID: "u1", Unset: []string{"plan"}})
	if got := e.user("u1").Traits; len(got) != 1 || got["age"] != 30.0 {
		t.Errorf("traits after unset %v, want only age", got)
	}
	found, err := e.g.DeleteUserWith(ctx, e.ws, "u1", []Write{{Key: key, Value: []byte("8")}})
	if err != nil || !found {
		t.Fatalf("delete: %v %v", found, err)
	}
	v, closer, err = e.st.DB().Get(key)
	if err != nil || string(v) != "8" {
		t.Fatalf("position after delete %q %v, want 8", v, err)
	}
	closer.Close()
}

type errString string

func (e errString) Error() string { return string(e) }
