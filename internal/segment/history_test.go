package segment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

// TestHistoryEqualsChangeStream drives random events, trait updates,
// segment creations, edits and deletions, restarts and clock moves of
// minutes to days through the real-time path, then checks that every
// segment's size series, by hour and by day, equals the sizes recomputed
// by replaying its changes up to the end of each step.
func TestHistoryEqualsChangeStream(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { historyScenario(t, seed) })
	}
}

func historyScenario(t *testing.T, seed uint64) {
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 9, 17, 0, 0, time.UTC)
	clk := &clock{t: start}
	w := openLive(t, vfs.NewMem(), clk)
	defer func() { w.close() }()
	r := rand.New(rand.NewPCG(seed, 5))
	cg := &condGen{r: rand.New(rand.NewPCG(seed, 6))}
	var segIDs []string
	msg := 0
	for step := range 120 {
		switch op := r.IntN(12); {
		case op < 5:
			var msgs []*model.Message
			for range 1 + r.IntN(5) {
				msg++
				msgs = append(msgs, &model.Message{Type: model.Track, UserID: fmt.Sprintf("u%d", r.IntN(30)),
					Event: gen.EventNames[r.IntN(len(gen.EventNames))], MessageID: fmt.Sprint("m", msg),
					Properties: map[string]any{"product_category": gen.Categories[r.IntN(4)], "price": float64(r.IntN(500))},
					Timestamp:  clk.Now().Add(-time.Duration(r.IntN(5*24)) * time.Hour)})
			}
			w.send(t, msgs...)
		case op < 7:
			msg++
			w.send(t, &model.Message{Type: model.Identify, UserID: fmt.Sprintf("u%d", r.IntN(30)), MessageID: fmt.Sprint("m", msg),
				Traits: map[string]any{"city": gen.Cities[r.IntN(len(gen.Cities))], "age": float64(18 + r.IntN(60))}})
		case op < 9 || len(segIDs) == 0:
			id := fmt.Sprintf("s%d", step)
			if _, err := w.m.Create(ctx, w.ws, id, id, json.RawMessage(cg.cond())); err != nil {
				t.Fatal(err)
			}
			segIDs = append(segIDs, id)
		case op < 10:
			i := r.IntN(len(segIDs))
			if r.IntN(3) == 0 {
				if err := w.m.Delete(ctx, w.ws, segIDs[i]); err != nil && !errors.Is(err, segment.ErrConflict) {
					t.Fatal(err)
				}
				segIDs = append(segIDs[:i], segIDs[i+1:]...)
			} else if _, err := w.m.Update(ctx, w.ws, segIDs[i], "", json.RawMessage(cg.cond())); err != nil {
				t.Fatal(err)
			}
		case op < 11 && step%4 == 0:
			w.close()
			w = openLive(t, w.fs, clk)
		default:
			clk.Advance(time.Duration(1+r.IntN(36*60)) * time.Minute)
			if err := w.m.Tick(ctx, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		w.m.WaitBuilds()
	}
	now := clk.Now()
	if now.Sub(start) < 2*24*time.Hour {
		t.Fatalf("the clock moved only %v: too little history to compare", now.Sub(start))
	}
	// Every change, in order, with its time.
	var changes []segment.Change
	err := store.ScanChanges(w.st.DB(), w.ws.Num, 0, func(_ uint64, rec []byte) bool {
		c, _, err := segment.DecodeChange(rec)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	sizeAt := func(seg string, end time.Time) uint64 {
		var n int64
		for _, c := range changes {
			if c.Segment != seg || !c.At.Before(end) {
				continue
			}
			if c.Change == "enter" {
				n++
			} else {
				n--
			}
		}
		return uint64(n)
	}
	compared, moving := 0, 0
	for _, id := range segIDs {
		s, err := w.m.Get(w.ws, id)
		if err != nil {
			continue // deleted as a side effect (never: kept for clarity)
		}
		for _, step := range []time.Duration{time.Hour, 24 * time.Hour} {
			from := start.Add(-3 * time.Hour)
			pts, err := w.m.History(w.ws, id, from, now, step)
			if err != nil {
				t.Fatal(err)
			}
			want := int(now.Sub(from.Truncate(step))/step) + 1
			if now.Truncate(step).Equal(now) {
				want--
			}
			if len(pts) != want {
				t.Fatalf("segment %s step %v: %d points, want %d", id, step, len(pts), want)
			}
			distinct := map[uint64]bool{}
			for i, p := range pts {
				end := from.Truncate(step).Add(time.Duration(i+1) * step)
				if i == len(pts)-1 {
					if !p.At.Equal(now) || p.Size != s.Size {
						t.Fatalf("segment %s step %v: last point %v %d, want now %v and the live size %d", id, step, p.At, p.Size, now, s.Size)
					}
					end = now.Add(time.Nanosecond)
				} else if !p.At.Equal(end) {
					t.Fatalf("segment %s step %v point %d at %v, want %v", id, step, i, p.At, end)
				}
				if w := sizeAt(id, end); p.Size != w {
					t.Fatalf("segment %s step %v: size %d at %v, the change stream says %d", id, step, p.Size, p.At, w)
				}
				distinct[p.Size] = true
				compared++
			}
			if len(distinct) > 1 {
				moving++
			}
		}
	}
	if moving < 3 {
		t.Errorf("only %d series moved: the comparison proves little", moving)
	}
	t.Logf("%d points of %d segments compared, %d series moved", compared, len(segIDs), moving)
}

// TestHistoryRefusals: bad steps and ranges are errors that name the
// parameter; an unknown segment is not found; a deleted segment's series
// is gone with it, so a new segment of the same id starts at zero.
func TestHistoryRefusals(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	now := clk.Now()
	w.send(t, &model.Message{Type: model.Identify, UserID: "a", Traits: map[string]any{"plan": "pro"}})
	if _, err := w.m.Create(ctx, w.ws, "pro", "pro", json.RawMessage(`{"trait":"plan","op":"eq","value":"pro"}`)); err != nil {
		t.Fatal(err)
	}
	var ie *segment.InvalidError
	for _, c := range []struct {
		from, to time.Time
		step     time.Duration
		path     string
	}{
		{now.Add(-time.Hour), now, time.Minute, "step"},
		{now, now.Add(-time.Hour), time.Hour, "from"},
		{now.AddDate(-2, 0, 0), now, time.Hour, "from"},
	} {
		if _, err := w.m.History(w.ws, "pro", c.from, c.to, c.step); !errors.As(err, &ie) || ie.Path != c.path {
			t.Errorf("History(%v, %v, %v) = %v, want an invalid %s", c.from, c.to, c.step, err, c.path)
		}
	}
	if _, err := w.m.History(w.ws, "nope", now.Add(-time.Hour), now, time.Hour); !errors.Is(err, segment.ErrNotFound) {
		t.Errorf("unknown segment: %v", err)
	}
	clk.Advance(2 * time.Hour)
	if err := w.m.Delete(ctx, w.ws, "pro"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.m.Create(ctx, w.ws, "pro", "pro", json.RawMessage(`{"trait":"plan","op":"eq","value":"free"}`)); err != nil {
		t.Fatal(err)
	}
	pts, err := w.m.History(w.ws, "pro", now.Add(-time.Hour), clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if p.Size != 0 {
			t.Fatalf("the recreated segment's history %v holds its predecessor's sizes", pts)
		}
	}
}

// BenchmarkHistory reads a year of hourly size points (one segment whose
// size moved every hour) as the console's chart asks for them: the last
// 30 days by day, and the last 2 days by hour.
//
//	go test -run XXX -bench BenchmarkHistory ./internal/segment/
func BenchmarkHistory(b *testing.B) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2025, 6, 1, 0, 30, 0, 0, time.UTC)}
	w := openLive(b, vfs.NewMem(), clk)
	defer w.close()
	if _, err := w.m.Create(ctx, w.ws, "pro", "pro", json.RawMessage(`{"trait":"plan","op":"eq","value":"pro"}`)); err != nil {
		b.Fatal(err)
	}
	for h := range 365 * 24 {
		plan := []string{"pro", "free"}[h%2]
		w.send(b, &model.Message{Type: model.Identify, UserID: fmt.Sprint("u", h%7), Traits: map[string]any{"plan": plan}})
		clk.Advance(time.Hour)
	}
	now := clk.Now()
	for _, c := range []struct {
		name string
		from time.Time
		step time.Duration
	}{{"30d_by_day", now.AddDate(0, 0, -30), 24 * time.Hour}, {"2d_by_hour", now.AddDate(0, 0, -2), time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				pts, err := w.m.History(w.ws, "pro", c.from, now, c.step)
				if err != nil || len(pts) < 30 {
					b.Fatalf("%d points, %v", len(pts), err)
				}
			}
		})
	}
}
