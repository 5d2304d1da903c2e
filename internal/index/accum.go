package index

import "math"

// accMode is what an event scan accumulates per profile besides its count.
type accMode uint8

const (
	accCount accMode = iota // the count only
	accCells                // numeric aggregate cells (sum, avg, min, max)
	accMask                 // distinct over at most 64 value ids: a bit mask
	accPairs                // distinct: (number, value id) pairs, sorted later
)

// defaultPartBytes is the per-profile state one partition of a scan
// covers: it should stay in a core's L2 cache while the partition's events
// are counted.
const defaultPartBytes = 256 << 10

// maxParts bounds the partitions (each is a write stream).
const maxParts = 512

// SetScanParallel sets how many workers one event scan may use and when it
// splits: when the blocks its window meets hold at least minEvents events
// and at least perProfile events per profile of the index (0: no such
// bound). Each worker has its own per-profile scan state, zeroed before and
// merged after, a cost that grows with the profiles and not with the
// events; the per-profile bound keeps scans too small to repay it on one
// worker. The default is GOMAXPROCS workers (at most 4), from 1<<20 events
// and 2 events per profile.
func (x *Index) SetScanParallel(workers, minEvents, perProfile int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.scanWorkers, x.scanMinEvents, x.scanPerProfile = max(workers, 1), max(minEvents, 1), max(perProfile, 0)
}

// SetScanYield sets after how many blocks a scan looks at its context
// (default 64, about 65,000 events). A yielding scan (EventYielding) holds
// no lock while it counts, so this only paces how soon a query given up
// stops. Tests set 1.
func (x *Index) SetScanYield(blocks int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.yieldEvery = max(blocks, 1)
}

// SetScanCacheBytes sets the per-profile scan state that one partition of
// an event scan covers (default 256 KiB, a core's L2 cache); scans over
// more than 32 times that are partitioned. Tests set it small so that
// small data sets take the partitioned path.
func (x *Index) SetScanCacheBytes(n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.partBytes = max(n, 4)
}

// accum counts a scan's qualifying events, given as number<<32 | value id,
// into the scratch's dense per-profile arrays.
//
// Counting is a random access by profile number per event; over millions
// of profiles the arrays are tens of megabytes and every event would be a
// cache miss. So, when the arrays outgrow the last-level cache, events are first
// partitioned by number range into buffers (sequential writes), and a
// buffer is counted when full: its events then touch one range of the
// arrays, which stays cached. The answer is the same either way; only the
// order in which profiles are first touched differs.
type accum struct {
	s     *scratch
	mode  accMode
	nums  []float64 // value id → number (NaN: not one); for cells, mask, pairs
	shift uint      // number >> shift is the partition; 0: not partitioned
	bytes int       // the state a partition covers (Index.partBytes)
	cap   int       // events a partition buffers before they are counted
}

// bytesPerProfile is the scratch state the mode updates per profile.
func (a *accum) bytesPerProfile() int {
	switch a.mode {
	case accCells:
		return 4 + 16
	case accMask:
		return 4 + 8
	}
	return 4
}

// partition decides whether a scan over size profile numbers is
// partitioned, and sets up the buffers.
func (a *accum) partition(size int) {
	a.shift = 0
	if a.bytes == 0 {
		a.bytes = defaultPartBytes
	}
	// Up to 32 partitions' worth (8 MiB at the default) the state stays
	// in the last-level cache and counting it directly is faster
	// (BenchmarkEventScan: 7.5 against 10.7 ns/event for counts over 1M
	// profiles; 19 against 39 for distinct masks, 12 MB).
	if size*a.bytesPerProfile() <= 32*a.bytes {
		return
	}
	shift := uint(1)
	for (1<<shift)*a.bytesPerProfile() < a.bytes {
		shift++
	}
	for (size>>shift)+1 > maxParts {
		shift++
	}
	a.shift = shift
	// A partition is counted when it holds two events per profile of its
	// range: each cache line of its state then serves dozens of events
	// while it is cached. The buffers take 16 B per profile in all.
	a.cap = 2 << shift
	n := (size >> shift) + 1
	s := a.s
	for len(s.parts) < n {
		s.parts = append(s.parts, nil) // grown by append up to cap
	}
}

// add counts (or buffers) a block's staged events.
func (a *accum) add(es []uint64) {
	if a.shift == 0 {
		a.apply(es)
		return
	}
	parts := a.s.parts
	for _, e := range es {
		p := e >> (32 + a.shift)
		parts[p] = append(parts[p], e)
		if len(parts[p]) >= a.cap {
			a.apply(parts[p])
			parts[p] = parts[p][:0]
		}
	}
}

// flush counts what the partitions still buffer.
func (a *accum) flush() {
	if a.shift == 0 {
		return
	}
	for p, buf := range a.s.parts {
		if len(buf) > 0 {
			a.apply(buf)
			a.s.parts[p] = buf[:0]
		}
	}
}

// apply counts events into the dense arrays, listing each number the
// first time it is touched (firstTouch, which also sets up its cells or
// mask as prepare chose: an aggregate whose column no event has is
// counted in accCount mode over prepared cells). One loop per mode, so
// that the mode is not decided per event.
func (a *accum) apply(es []uint64) {
	s := a.s
	cnt := s.cnt
	switch a.mode {
	case accCount:
		for _, e := range es {
			num := uint32(e >> 32)
			if cnt[num] == 0 {
				s.firstTouch(num)
			}
			cnt[num]++
		}
	case accCells:
		a.applyCells(es)
	case accMask:
		for _, e := range es {
			num := uint32(e >> 32)
			if cnt[num] == 0 {
				s.firstTouch(num)
			}
			cnt[num]++
			if id := uint32(e); !math.IsNaN(a.nums[id]) {
				s.mask[num] |= 1 << id
			}
		}
	case accPairs:
		for _, e := range es {
			num := uint32(e >> 32)
			if cnt[num] == 0 {
				s.firstTouch(num)
			}
			cnt[num]++
			if !math.IsNaN(a.nums[uint32(e)]) {
				s.pairs = append(s.pairs, e)
			}
		}
	}
}

// applyCells is apply for numeric aggregates; the cell folds each value
// by the scan's function (s.op, the same for every event).
func (a *accum) applyCells(es []uint64) {
	s := a.s
	cnt, cells, nums := s.cnt, s.cells, a.nums
	for _, e := range es {
		num := uint32(e >> 32)
		if cnt[num] == 0 {
			s.firstTouch(num)
		}
		cnt[num]++
		f := nums[uint32(e)]
		if math.IsNaN(f) {
			continue
		}
		c := &cells[num]
		switch {
		case c.n == 0:
			c.v = f
		case s.op == opSum:
			c.v += f
		case s.op == opMin:
			c.v = min(c.v, f)
		default:
			c.v = max(c.v, f)
		}
		c.n++
	}
}
