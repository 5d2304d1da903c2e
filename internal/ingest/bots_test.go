package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// TestBotStateBounded: per-profile event counts live only for the current
// minute, and flags only until they are lifted, so the bot state does not
// grow with the number of profiles ever seen; flags survive a restart.
func TestBotStateBounded(t *testing.T) {
	fs := vfs.NewMem()
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	lim := config.Default().Limits
	lim.BotEventsPerMinute = 3
	open := func() (*store.Store, *Ingester, *Workspace) {
		st, err := store.Open("db", store.Options{FS: fs, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(st, Options{Limits: lim, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		ws, ok := g.WorkspaceByName("default")
		if !ok {
			if ws, _, err = g.CreateWorkspace(context.Background(), "default", Keys{}); err != nil {
				t.Fatal(err)
			}
		}
		return st, g, ws
	}
	st, g, ws := open()
	send := func(user string, n int) {
		items := make([]message.Item, n)
		for i := range items {
			m := &model.Message{Type: model.Track, UserID: user, Event: "E", Timestamp: clock(), ReceivedAt: clock()}
			items[i] = message.Item{Index: i, Msg: m, Raw: []byte(`{}`)}
		}
		if _, err := g.Submit(context.Background(), ws, "test", items); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 { // many quiet profiles in one minute
		send(fmt.Sprint("u", i), 1)
	}
	send("bot", 10)
	advance(time.Minute)
	send("u0", 1) // the next minute starts from nothing
	if n := len(ws.bots.counts); n != 1 {
		t.Errorf("%d profiles counted after the minute changed, want 1", n)
	}
	if n := len(ws.bots.flagged); n != 1 {
		t.Errorf("%d profiles flagged, want the bot alone", n)
	}
	g.Close()
	st.Close()
	st, g, ws = open() // the flag is stored with its minute
	defer func() { g.Close(); st.Close() }()
	if n := len(ws.bots.flagged); n != 1 {
		t.Fatalf("%d flags after a restart, want 1", n)
	}
	advance(BotQuiet + time.Minute)
	if err := g.ExpireBots(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	if n := len(ws.bots.flagged); n != 0 {
		t.Errorf("%d flags left after a quiet day", n)
	}
}
