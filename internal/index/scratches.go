package index

import (
	"sync"
	"time"
)

// scratches keeps an index's scan state (scratch) between scans. At 10M
// profiles one scratch is hundreds of megabytes (counts, cells, masks,
// partition buffers); a sync.Pool loses it at every collection, and a
// scan that allocates it again makes the next collection come sooner: a
// profile of the 10M suite found a third of the scans' time growing and
// clearing new arrays. Here up to keepScratches stay until no scan has
// used one for scratchIdle, then go to the collector.
type scratches struct {
	mu   sync.Mutex // a leaf: nothing is taken under it
	free []*scratch
	idle *time.Timer // drops free once it fires; reset by each put
}

const (
	keepScratches = 4 // a scan and its workers (GOMAXPROCS, at most 4)
	scratchIdle   = 30 * time.Second
)

// get returns a cleared scratch.
func (c *scratches) get() *scratch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free[n-1] = nil
		c.free = c.free[:n-1]
		return s
	}
	return &scratch{}
}

// put clears what the scan set in s and keeps it, unless enough are kept.
func (c *scratches) put(s *scratch) {
	s.reset()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.free) < keepScratches {
		c.free = append(c.free, s)
	}
	if c.idle == nil {
		c.idle = time.AfterFunc(scratchIdle, c.drop)
	} else {
		c.idle.Reset(scratchIdle)
	}
}

// drop lets the kept scratches go.
func (c *scratches) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.free)
	c.free = c.free[:0]
}

// close drops the kept scratches and stops the idle timer (Index.Close).
func (c *scratches) close() {
	c.mu.Lock()
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	c.drop()
}
