package index

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/store"
)

// A persisted index lives in its own directory: sealed parts (part
// files), one checkpoint file naming them with everything else, and
// CURRENT naming that checkpoint. The store stays the source of truth:
// every file here can be rebuilt from the stored events and profiles, and
// is, when it is missing, corrupt or stale. Changes after the checkpoint
// are in the store's journal (journal.go).

const currentFile = "CURRENT"

var errClosed = errors.New("index is closed")

// Open returns a workspace's index. With o.Dir set it opens the index
// persisted there and applies the journal written since its checkpoint;
// when there is none (a first start, or a data directory from before
// persisted indexes), or it fails its checks, it builds the index from
// the stored events and profiles as LoadWith does, and the first
// Checkpoint writes it. Without o.Dir it is LoadWith.
func Open(ctx context.Context, db *pebble.DB, ws uint32, o LoadOptions) (*Index, error) {
	if o.Dir == "" || !hostLittleEndian() {
		return LoadWith(ctx, db, ws, o)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	x, err := openCheckpoint(ctx, db, ws, o)
	if err == nil {
		log.Info("index opened from its checkpoint", "dir", o.Dir, "journal_entries", x.replayed, "took", time.Since(start).Round(time.Millisecond))
		return x, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("no index checkpoint: building the index from the stored events", "dir", o.Dir)
	} else {
		log.Error("index checkpoint unusable: rebuilding the index from the stored events", "dir", o.Dir, "err", err)
	}
	x, err = LoadWith(ctx, db, ws, o)
	if err != nil {
		return nil, err
	}
	x.persistIn(o, ws)
	// Everything journaled so far is in the store the index was built
	// from: the first checkpoint covers it.
	if x.jseq, err = lastJournalSeq(db, ws); err != nil {
		return nil, fmt.Errorf("read index journal: %w", err)
	}
	x.ckptSeq = 0
	x.nextPart = uint64(time.Now().UnixNano()) // never the name of a file left behind
	log.Info("index built from the stored events", "took", time.Since(start).Round(time.Millisecond))
	// Checkpoint it now, while the server is not serving yet, rather than
	// on the applier at the first commit: a large index takes a while.
	// Everything the store holds is durable already.
	t := time.Now()
	x.keepFrom = o.KeepJournalFrom
	defer func() { x.keepFrom = 0 }()
	if err := x.Checkpoint(db, func() error { return nil }); err != nil {
		log.Error("index checkpoint after the rebuild failed; the next commit tries again", "err", err)
	} else {
		log.Info("index checkpoint written", "dir", o.Dir, "took", time.Since(t).Round(time.Millisecond))
	}
	return x, nil
}

// Persist makes a new, empty index (of a workspace made since the start)
// persisted in o.Dir from its first checkpoint on.
func (x *Index) Persist(ws uint32, o LoadOptions) {
	if o.Dir == "" || !hostLittleEndian() {
		x.sealEvents = o.SealEvents
		return
	}
	x.persistIn(o, ws)
	x.nextPart = uint64(time.Now().UnixNano())
}

func (x *Index) persistIn(o LoadOptions, ws uint32) {
	x.dir, x.ws, x.sealEvents = o.Dir, ws, o.SealEvents
}

// openCheckpoint opens the checkpoint CURRENT names, maps its parts,
// replays the journal and checks the result against the store's counters.
func openCheckpoint(ctx context.Context, db *pebble.DB, ws uint32, o LoadOptions) (*Index, error) {
	cur, err := os.ReadFile(filepath.Join(o.Dir, currentFile))
	if err != nil {
		return nil, err
	}
	names := strings.Fields(string(cur))
	if len(names) == 0 || len(names) > 2 {
		return nil, fmt.Errorf("index %s names %d files: %w", currentFile, len(names), ErrCorrupt)
	}
	base, err := readMeta(filepath.Join(o.Dir, names[0]))
	if err != nil {
		return nil, err
	}
	x, evs := base.x, base
	if len(names) == 2 {
		if evs, err = readMeta(filepath.Join(o.Dir, names[1])); err != nil {
			return nil, err
		}
		x.events, x.nextPart, x.retainFrom = evs.x.events, evs.x.nextPart, evs.x.retainFrom
	}
	switch {
	case base.sections&secProfiles == 0 || evs.sections&secEvents == 0:
		return nil, fmt.Errorf("index checkpoint %s lacks a section: %w", strings.Join(names, " and "), ErrCorrupt)
	case evs.seq < base.seq:
		return nil, fmt.Errorf("index checkpoint %s is older than its base %s: %w", names[1], names[0], ErrCorrupt)
	case x.ws != ws || evs.x.ws != ws:
		return nil, fmt.Errorf("index checkpoint %s is not of workspace %d: %w", strings.Join(names, " and "), ws, ErrCorrupt)
	}
	x.persistIn(o, ws)
	x.baseSeq, x.baseFile = base.seq, names[0]
	x.ckptSeq, x.ckptFile = evs.seq, names[len(names)-1]
	x.jseq = base.seq
	// Progress: the parts by their number, then the journal by entries.
	report := func(float64) {}
	if o.Progress != nil {
		last := -1.0
		report = func(f float64) {
			if f > last {
				last = f
				o.Progress(f)
			}
		}
	}
	report(0)
	if err := x.openParts(ctx, evs.partNames, func(f float64) { report(0.8 * f) }); err != nil {
		x.Close()
		return nil, err
	}
	x.lastEventSeq = evs.storeSeq
	for _, files := range evs.partNames {
		x.ckptParts = append(x.ckptParts, files...)
	}
	last, err := lastJournalSeq(db, ws)
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("read index journal: %w", err)
	}
	tail := max(int(last)-int(x.baseSeq), 1)
	// The profiles' side from the base's seq, the whole of each entry
	// after the event columns' seq.
	if x.replayed, err = x.replay(ctx, db, 0, x.ckptSeq, func(n int) { report(0.8 + 0.2*float64(n)/float64(tail)) }); err != nil {
		x.Close()
		return nil, err
	}
	if x.jseq < x.ckptSeq {
		x.Close()
		return nil, fmt.Errorf("index journal ends at %d, before checkpoint %s at %d: %w", x.jseq, x.ckptFile, x.ckptSeq, ErrCorrupt)
	}
	c, err := store.ReadCounters(db, ws)
	if err != nil {
		x.Close()
		return nil, err
	}
	if c.EventSeq != x.lastEventSeq {
		x.Close()
		return nil, fmt.Errorf("checkpoint %s and its journal reach event %d, the store event %d (an index directory of another store?): %w",
			x.ckptFile, x.lastEventSeq, c.EventSeq, ErrCorrupt)
	}
	if err := ctx.Err(); err != nil {
		x.Close()
		return nil, err
	}
	report(1)
	return x, nil
}

// openParts maps every part file, checking their checksums on all cores;
// progress hears the fraction opened.
func (x *Index) openParts(ctx context.Context, names map[string][]string, progress func(float64)) error {
	type job struct {
		col *eventCol
		i   int
		f   string
	}
	var jobs []job
	for ev, files := range names {
		c := x.events[ev]
		c.parts = make([]*part, len(files))
		for i, f := range files {
			jobs = append(jobs, job{c, i, f})
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		done  int
		next  = make(chan job)
	)
	for range min(runtime.GOMAXPROCS(0), 4) {
		wg.Go(func() {
			for j := range next {
				var p *part
				err := ctx.Err()
				if err == nil {
					p, err = openPart(x.dir, j.f)
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				done++
				progress(float64(done) / float64(len(jobs)))
				mu.Unlock()
				j.col.parts[j.i] = p
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return first
}

// CheckpointDue reports whether the writer should checkpoint now: none
// is being written, and the heads hold at least events events, or every
// is past since the last checkpoint and anything changed. A checkpoint
// holds the applier for its seal, copy and installation, so the next one
// waits at least 20 times that when it was over 100 ms: checkpoints take
// at most a twentieth of the applier's time, and a start replays more.
func (x *Index) CheckpointDue(events int, every time.Duration, now time.Time) bool {
	if x.dir == "" || x.pending != nil {
		return false
	}
	changed := x.jseq != x.ckptSeq
	if changed && x.ckptSeq == 0 {
		return true
	}
	if x.ckptTook >= 100*time.Millisecond && now.Sub(x.lastCkpt) < 20*x.ckptTook {
		return false
	}
	return x.headEvents >= events || (changed && now.Sub(x.lastCkpt) >= every)
}

// Checkpoint seals every head into a part, writes the new parts and a
// checkpoint file naming all of them, points CURRENT at it, then deletes
// the files it no longer names (and, the first time, the journal it
// covers). sync must make every commit so far durable (the index holds
// their changes). The caller is the index's writer, between commits: the
// index then holds exactly what the store has committed. It waits for
// the writing that StartCheckpoint leaves to the background.
func (x *Index) Checkpoint(db *pebble.DB, sync func() error) error {
	if err := x.StartCheckpoint(db, sync); err != nil {
		return err
	}
	x.waitCheckpoint()
	_, err := x.FinishCheckpoint(db)
	return err
}

// StartCheckpoint is Checkpoint without waiting: the first checkpoint is
// written there and then (the profiles' side with it); later ones seal
// the heads, copy what the event columns' file holds, and leave the
// writing of the new parts and of that file to a goroutine.
// FinishCheckpoint, called by the writer between commits, installs it
// once written. The applier is held for the seal and the copy, not for
// the writing.
func (x *Index) StartCheckpoint(db *pebble.DB, sync func() error) error {
	if x.dir == "" || x.pending != nil {
		return nil
	}
	if x.closed {
		return errClosed
	}
	start := time.Now()
	if err := os.MkdirAll(x.dir, 0o755); err != nil {
		return fmt.Errorf("index directory: %w", err)
	}
	if err := sync(); err != nil {
		return err
	}
	c, err := store.ReadCounters(db, x.ws)
	if err != nil {
		return err
	}
	for _, col := range x.events {
		x.sealHead(col)
	}
	ck := &pending{seq: x.jseq, storeSeq: c.EventSeq, start: start, names: map[*part]string{}, mapped: map[string]*part{}, done: newOutcome()}
	for _, name := range slices.Sorted(maps.Keys(x.events)) {
		for _, p := range x.events[name].parts {
			if p.file == nil {
				ck.names[p] = fmt.Sprintf("p-%016x.col", x.nextPart)
				x.nextPart++
				ck.parts = append(ck.parts, p)
			}
		}
	}
	// The first checkpoint writes both sections; later ones the event
	// columns only, the profiles' side staying in the base file and the
	// journal since it (a merge in the background makes a newer base).
	full := x.baseFile == ""
	ck.name = fmt.Sprintf("evts-%016x.idx", x.jseq)
	if full {
		ck.name = fmt.Sprintf("ckpt-%016x.idx", x.jseq)
	}
	cols, err := x.snapEvents(ck.names, x.planMerges(ck))
	if err != nil {
		return err
	}
	for _, c := range cols {
		ck.files = append(ck.files, c.parts...)
	}
	h := x.header(x.jseq, c.EventSeq)
	var profiles func(*metaWriter)
	if full {
		profiles = x.writeProfiles
	}
	x.pending, x.headEvents = ck, 0
	dir, crashAt := x.dir, x.crashAt // the goroutine reads copies
	if len(ck.merges) > 0 {
		x.scans.Add(1) // the merges' sources stay mapped until they are read
	}
	write := func() error { return ck.write(dir, crashAt, h, profiles, cols, &x.scans) }
	if full {
		ck.done <- write() // it reads the live profiles: here and now
	} else {
		go func() { ck.done <- write() }()
	}
	ck.held = time.Since(start)
	return nil
}

// pending is a checkpoint being written.
type pending struct {
	seq, storeSeq uint64
	name          string           // its checkpoint file
	parts         []*part          // the parts it writes
	names         map[*part]string // their files
	files         []string         // every part file it names
	start         time.Time
	held          time.Duration    // the writer's time in StartCheckpoint
	merges        []*partMerge     // parts merged by the goroutine (partmerge.go)
	mapped        map[string]*part // the files written, mapped and checked by the goroutine
	done          outcome          // of the writing
}

// write writes the new parts and the checkpoint file (not CURRENT). It
// reads only the sealed parts and the copies made for it.
func (ck *pending) write(dir string, crashAt func(string) bool, h metaHeader, profiles func(*metaWriter), cols []colSnap, scans *atomic.Int32) error {
	if err := ck.writeMerges(dir, crashAt, scans); err != nil {
		return err
	}
	for _, p := range ck.parts {
		if err := crashed(crashAt, "part"); err != nil {
			return err
		}
		if err := writePart(dir, ck.names[p], p); err != nil {
			return err
		}
		// Mapped and checked here, not by the writer: a checksum
		// reads the whole file.
		mp, err := openPart(dir, ck.names[p])
		if err != nil {
			return err
		}
		ck.mapped[ck.names[p]] = mp
	}
	if err := crashed(crashAt, "checkpoint file"); err != nil {
		return err
	}
	err := writeFileSynced(filepath.Join(dir, ck.name), func(f *os.File) error {
		return writeMetaFile(f, h, profiles, cols, true)
	})
	if err != nil {
		return fmt.Errorf("write index checkpoint: %w", err)
	}
	return nil
}

// FinishCheckpoint installs a checkpoint whose files are written: the
// parts are mapped and swapped in for their arrays in memory (unless
// retention replaced them meanwhile), CURRENT names the new file, and
// files no longer named are deleted. It returns the writer's time spent
// on the checkpoint (0: none finished). It does not wait. A checkpoint
// that failed is reported and dropped: its parts stay in memory, the
// journal keeps everything, the next one writes them again.
func (x *Index) FinishCheckpoint(db *pebble.DB) (time.Duration, error) {
	ck := x.pending
	if ck == nil {
		return 0, nil
	}
	done, err := ck.done.ready()
	if !done {
		return 0, nil
	}
	start := time.Now()
	x.pending = nil
	if err != nil {
		ck.unmap()
		return 0, err
	}
	for _, p := range ck.parts {
		mp := ck.mapped[ck.names[p]]
		if !x.swapPart(p, mp) {
			mp.file.close() // retention dropped or copied it meanwhile
		}
	}
	for _, m := range ck.merges {
		mp := ck.mapped[m.name]
		if x.swapMerged(m, mp) {
			x.partMerges++
		} else {
			mp.file.close() // retention dropped or copied a source meanwhile
		}
	}
	full := x.baseFile == ""
	base := ck.name
	if !full {
		base = x.baseFile
	}
	if err := x.writeCurrent(base, ck.name); err != nil {
		return 0, err
	}
	if err := x.crash("CURRENT"); err != nil {
		return 0, err
	}
	x.ckptSeq, x.ckptFile, x.ckptParts, x.lastCkpt = ck.seq, ck.name, ck.files, time.Now()
	// The events of the entries through it are in the event columns now.
	if err := db.DeleteRange(store.JournalEventsKey(x.ws, 0), store.JournalEventsKey(x.ws, x.trimThrough(ck.seq)+1), pebble.NoSync); err != nil {
		return 0, fmt.Errorf("trim index journal's events: %w", err)
	}
	x.ckptTook = ck.held + x.lastCkpt.Sub(start)
	x.lastEventSeq = max(x.lastEventSeq, ck.storeSeq)
	if full {
		if err := x.newBase(db, ck.name, ck.seq); err != nil {
			return 0, err
		}
	} else if err := x.removeUnnamed(); err != nil {
		return 0, err
	}
	x.sinceBase++
	x.maybeMerge(db)
	return x.ckptTook, nil
}

// swapPart replaces part p by mp wherever a column holds it.
func (x *Index) swapPart(p, mp *part) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.events {
		if i := slices.Index(c.parts, p); i >= 0 {
			c.parts[i] = mp // the in-memory arrays go to the collector
			return true
		}
	}
	return false
}

// unmap closes the files a checkpoint that is dropped mapped.
func (ck *pending) unmap() {
	for _, p := range ck.mapped {
		p.file.close()
	}
}

// waitCheckpoint waits for a checkpoint being written.
func (x *Index) waitCheckpoint() {
	if ck := x.pending; ck != nil {
		ck.done.wait()
	}
}

// writeCurrent points CURRENT at the files of the profiles' side and the
// event columns (the same file for a full checkpoint), synced.
func (x *Index) writeCurrent(base, events string) error {
	text := base + "\n"
	if events != base {
		text += events + "\n"
	}
	if err := writeFileSynced(filepath.Join(x.dir, currentFile), func(f *os.File) error {
		_, err := f.WriteString(text)
		return err
	}); err != nil {
		return fmt.Errorf("write index checkpoint: %w", err)
	}
	return syncDir(x.dir)
}

// newBase records that CURRENT names base, holding the profiles' side
// through journal entry seq: the journal through it is deleted, and the
// files no longer named.
func (x *Index) newBase(db *pebble.DB, base string, seq uint64) error {
	x.baseFile, x.baseSeq, x.sinceBase = base, seq, 0
	if err := x.crash("journal trim"); err != nil {
		return err
	}
	if err := db.DeleteRange(store.JournalKey(x.ws, 0), store.JournalKey(x.ws, x.trimThrough(seq)+1), pebble.NoSync); err != nil {
		return fmt.Errorf("trim index journal: %w", err)
	}
	return x.removeUnnamed()
}

// trimThrough is how far the journal may be deleted once a checkpoint
// covers it through seq: not past the entries LoadOptions.KeepJournalFrom
// keeps while Open checkpoints a rebuild.
func (x *Index) trimThrough(seq uint64) uint64 {
	if x.keepFrom > 0 && x.keepFrom <= seq {
		return x.keepFrom - 1
	}
	return seq
}

// removeUnnamed deletes the files of the index directory that CURRENT
// and the checkpoint files it names do not name, but for those of a merge
// or checkpoint under way and those the live index maps. (Between
// checkpoints the live index may have dropped parts the checkpoint on
// disk still names, and hold parts not written yet.)
func (x *Index) removeUnnamed() error {
	keep := map[string]bool{x.baseFile: true, x.ckptFile: true, currentFile: true}
	if x.merge != nil {
		keep[x.merge.name], keep[x.merge.name+".tmp"] = true, true
	}
	if ck := x.pending; ck != nil {
		keep[ck.name], keep[ck.name+".tmp"] = true, true
		for _, f := range ck.names {
			keep[f], keep[f+".tmp"] = true, true
		}
		for _, m := range ck.merges {
			keep[m.name], keep[m.name+".tmp"] = true, true
		}
	}
	for _, p := range x.ckptParts {
		keep[p] = true
	}
	// The parts the live index maps: a merge's sources that it still
	// holds, because retention dropped one of them meanwhile, are named
	// by the next checkpoint again.
	for _, c := range x.events {
		for _, p := range c.parts {
			if p.file != nil {
				keep[p.file.name] = true
			}
		}
	}
	ents, err := os.ReadDir(x.dir)
	if err != nil {
		return fmt.Errorf("index directory: %w", err)
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(x.dir, e.Name())); err != nil {
				return fmt.Errorf("remove old index file: %w", err)
			}
		}
	}
	return nil
}

// writeFileSynced writes path through a temporary file, synced, renamed
// into place.
func writeFileSynced(path string, fill func(*os.File) error) error {
	f, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync index directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync index directory: %w", err)
	}
	return nil
}

// Close stops a merge under way and unmaps the part files. The index
// must not be used after.
func (x *Index) Close() error {
	x.waitCheckpoint()
	if ck := x.pending; ck != nil {
		ck.unmap() // never installed
	}
	x.stopMerge()
	x.scratch.close()
	x.SetPartials(0, 0)
	x.mu.Lock()
	defer x.mu.Unlock()
	var first error
	for _, p := range x.dead {
		if err := p.file.close(); err != nil && first == nil {
			first = err
		}
	}
	x.dead = nil
	for _, c := range x.events {
		for _, p := range c.parts {
			if p == nil {
				continue
			}
			if err := p.file.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	x.events = map[string]*eventCol{}
	x.closed = true
	return first
}

// Replayed is how many journal entries Open applied after the checkpoint.
func (x *Index) Replayed() int { return x.replayed }

// crash is the test hook of a crash in the middle of a checkpoint: when
// crashAt says so at a stage, the checkpoint stops there, as if the
// process had died (what it wrote so far stays).
func (x *Index) crash(stage string) error { return crashed(x.crashAt, stage) }

// crashed is crash for a goroutine, which holds a copy of the hook.
func crashed(hook func(string) bool, stage string) error {
	if hook != nil && hook(stage) {
		return fmt.Errorf("crash before %s: %w", stage, errCrashed)
	}
	return nil
}

// outcome is the result of work done on a goroutine of its own (a
// checkpoint's files, a merge), sent once.
type outcome chan error

func newOutcome() outcome { return make(outcome, 1) }

// ready reports whether the work is done, and its error.
func (o outcome) ready() (bool, error) {
	select {
	case err := <-o:
		return true, err
	default:
		return false, nil
	}
}

// wait waits for the work to be done; ready then reports it.
func (o outcome) wait() { o <- <-o }

var errCrashed = errors.New("crashed (test)")
