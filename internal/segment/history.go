package segment

import (
	"fmt"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// The size series: every applier step that changes a segment's size also
// writes, in the same batch, the size it ends with under the UTC hour of
// the step (store.HistoryKey). A later step in the same hour overwrites
// the point, so a segment has at most one point per hour, and none for
// hours in which its size did not move. The series is apart from the
// change log, so compacting the log loses none of it, and a range reads a
// few keys instead of replaying changes.

// MaxHistoryPoints bounds one history answer.
const MaxHistoryPoints = 5000

// Point is a segment's size at the end of a step.
type Point struct {
	At   time.Time `json:"at"`
	Size uint64    `json:"size"`
}

// writeHistory writes the size point of every segment this step moved.
func (e *emitter) writeHistory() error {
	h := store.Hour(e.now)
	for s := range e.dirty {
		if err := e.b.Set(store.HistoryKey(e.sp.ws.Num, s.ID, h), store.EncodeSize(s.members.GetCardinality()), nil); err != nil {
			return fmt.Errorf("size point of segment %q: %w", s.ID, err)
		}
	}
	return nil
}

// History returns a segment's size at the end of each step (an hour or a
// day, UTC-aligned) of the steps that overlap [from, to). The step that
// holds the present ends now: its size is the live one.
func (m *Manager) History(w *ingest.Workspace, id string, from, to time.Time, step time.Duration) ([]Point, error) {
	if step != time.Hour && step != 24*time.Hour {
		return nil, &InvalidError{Path: "step", Msg: "step must be 1h or 1d"}
	}
	if !from.Before(to) {
		return nil, &InvalidError{Path: "from", Msg: fmt.Sprintf("from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	}
	start := from.UTC().Truncate(step)
	if n := to.Sub(start) / step; n > MaxHistoryPoints {
		return nil, &InvalidError{Path: "from", Msg: fmt.Sprintf("the range holds %d steps; at most %d are answered at once", n, MaxHistoryPoints)}
	}
	sp := m.space(w)
	sp.mu.RLock()
	s, ok := sp.segs[id]
	var live uint64
	if ok {
		live = s.members.GetCardinality()
	}
	sp.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	now := m.opts.Now().UTC()
	type pt struct {
		hour uint32
		size uint64
	}
	var pts []pt
	last := to.Add(-time.Nanosecond)
	err := store.ScanHistory(m.st.DB(), w.Num, id, store.Hour(start), store.Hour(last.Truncate(step).Add(step-time.Hour)), func(h uint32, n uint64) {
		pts = append(pts, pt{h, n})
	})
	if err != nil {
		return nil, fmt.Errorf("size series of segment %q: %w", id, err)
	}
	out := []Point{}
	i := 0
	var size uint64
	for t := start; t.Before(to); t = t.Add(step) {
		end := t.Add(step)
		// The size at the end of the step is the last point of an hour
		// that began before it ended.
		for i < len(pts) && store.HourStart(pts[i].hour).Before(end) {
			size = pts[i].size
			i++
		}
		if t.After(now) {
			break
		}
		if end.After(now) {
			out = append(out, Point{At: now, Size: live})
			break
		}
		out = append(out, Point{At: end, Size: size})
	}
	return out, nil
}
