package index

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
)

// Part merges. Every checkpoint seals each event name's head into a new
// part, so a server that checkpoints every million events makes a part
// per name per checkpoint: hundreds a day, each covering minutes of
// arrival. Every part costs a file, a mapping and a step of every scan,
// and presence by day (days.go) answers only the days a part holds
// wholly. So, as VictoriaMetrics merges its small parts and Prometheus
// compacts its blocks, consecutive parts of a column are merged into one
// bigger part, in arrival order, by the checkpoint's goroutine:
//
//   - StartCheckpoint (the writer) plans at most one merge per column:
//     the newest run of written parts in which no older part is bigger
//     than all the newer ones together and the newest is at most half of
//     it, at least mergeFanIn long and at most maxMergedEvents events.
//     Part sizes then grow geometrically, a column holds O(log n) parts,
//     and each event is rewritten O(log n) times.
//   - The goroutine reads those parts (their mappings stay: it counts as
//     a scan, see Index.scans), makes the merged part in memory, writes
//     it with the checkpoint's new parts, and maps and checks it; the
//     checkpoint file names the merged part instead of the ones it
//     replaces.
//   - FinishCheckpoint (the writer) swaps it in for them under the lock,
//     unless retention dropped or copied any of them meanwhile (then the
//     live index keeps them, and their files stay while it maps them);
//     the old parts are unmapped once no scan runs, and their files
//     deleted.
//
// A merged part holds the same events in the same order as its sources,
// so every answer is the same; only the chains are made again (a late
// event is put at its place in its profile's chain across the sources).

const (
	mergeFanIn      = 4       // the fewest parts a merge takes
	maxMergedEvents = 1 << 24 // the most events a merged part holds (its arrays are made in memory: ~20 B an event)
)

// SetPartMerge turns part merges on (the default) or off, to measure
// what they buy. The caller is the writer.
func (x *Index) SetPartMerge(on bool) { x.noPartMerge = !on }

// PartMerges is how many merged parts were installed since the index
// was opened.
func (x *Index) PartMerges() int { return x.partMerges }

// partMerge is a merge planned by a checkpoint.
type partMerge struct {
	col  string  // the event name
	from []*part // consecutive parts of its column, oldest first
	name string  // the merged part's file
}

// planMerges plans a checkpoint's part merges, at most one per column,
// and returns the parts they replace: the first of each by the merged
// part's file, the others by "" (snapEvents names them so).
func (x *Index) planMerges(ck *pending) map[*part]string {
	replaced := map[*part]string{}
	if x.noPartMerge {
		return replaced
	}
	for _, name := range slices.Sorted(maps.Keys(x.events)) {
		from := planPartMerge(x.events[name].parts)
		if from == nil {
			continue
		}
		m := &partMerge{col: name, from: from, name: fmt.Sprintf("p-%016x.col", x.nextPart)}
		x.nextPart++
		ck.merges = append(ck.merges, m)
		for i, p := range from {
			replaced[p] = ""
			if i == 0 {
				replaced[p] = m.name
			}
		}
	}
	return replaced
}

// writeMerges makes a checkpoint's merged parts one at a time, writes,
// maps and checks each, then releases the sources (scans: see
// StartCheckpoint). It runs on the checkpoint's goroutine.
func (ck *pending) writeMerges(dir string, crashAt func(string) bool, scans *atomic.Int32) error {
	if len(ck.merges) == 0 {
		return nil
	}
	defer scans.Add(-1) // the sources are read, or never will be
	if err := crashed(crashAt, "merge sources"); err != nil {
		return err
	}
	for _, m := range ck.merges {
		into := mergeParts(m.from) // garbage once written: the file is what FinishCheckpoint swaps in
		if err := crashed(crashAt, "merged part"); err != nil {
			return err
		}
		if err := writePart(dir, m.name, into); err != nil {
			return err
		}
		mp, err := openPart(dir, m.name)
		if err != nil {
			return err
		}
		ck.mapped[m.name] = mp
	}
	return nil
}

// planPartMerge returns the run of parts to merge, or nil.
func planPartMerge(parts []*part) []*part {
	for end := len(parts) - 1; end >= mergeFanIn-1; end-- {
		if parts[end].file == nil {
			continue // sealed by this checkpoint: merged at a later one
		}
		sum, start := 0, end
		for i := end; i >= 0; i-- {
			p := parts[i]
			if p.file == nil || sum+p.len() > maxMergedEvents || (i < end && p.len() > sum) {
				break
			}
			sum += p.len()
			start = i
		}
		// The newest part is at most half of the run: a big part is not
		// rewritten for the sake of small older ones.
		if end-start+1 >= mergeFanIn && 2*parts[end].len() <= sum {
			return parts[start : end+1]
		}
	}
	return nil
}

// mergeParts makes one part of consecutive parts of a column: their
// events in the same order, chained again. It has the property columns
// any of them has (a column made later is missing from older parts).
func mergeParts(from []*part) *part {
	n, ncols := 0, 0
	for _, p := range from {
		n, ncols = n+p.len(), max(ncols, len(p.ids))
	}
	c := &eventCol{byProf: map[uint32]int32{}, prof: make([]uint32, 0, n), ts: make([]int64, 0, n), next: make([]int32, 0, n)}
	ids := make([]*idCol, ncols)
	for k := range ids {
		for _, p := range from {
			if p.idsOf(k) != nil {
				col := newIDCol(0)
				ids[k] = &col
				break
			}
		}
	}
	for _, p := range from {
		for i, num := range p.prof {
			c.appendEvent(num, p.ts[i])
		}
		for k, col := range ids {
			if col != nil {
				for i := range p.prof {
					col.add(p.idAt(k, int32(i)))
				}
			}
		}
	}
	return newPart(run{prof: c.prof, ts: c.ts, next: c.next, blocks: c.blocks, ids: ids}, c.byProf)
}

// swapMerged puts a merged part in place of its sources, if the column
// still holds all of them in a row; the sources are unmapped once no
// scan reads them. The caller is the writer.
func (x *Index) swapMerged(m *partMerge, mp *part) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.events[m.col]
	if c == nil {
		return false
	}
	i := -1
	for j, p := range c.parts {
		if p == m.from[0] {
			i = j
			break
		}
	}
	if i < 0 || i+len(m.from) > len(c.parts) {
		return false
	}
	for j, p := range m.from {
		if c.parts[i+j] != p {
			return false
		}
	}
	parts := make([]*part, 0, len(c.parts)-len(m.from)+1)
	parts = append(parts, c.parts[:i]...)
	parts = append(parts, mp)
	c.parts = append(parts, c.parts[i+len(m.from):]...)
	x.dead = append(x.dead, m.from...)
	x.releaseDead()
	return true
}
