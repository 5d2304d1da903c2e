package segment

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// durability tracks, per workspace, which change seqs are durable: those
// written before a commit group that has been synced. Only durable changes
// are published (streams, sinks), so no published change can be lost or
// rewritten by a crash.
type durability struct {
	mu        sync.Mutex
	pending   map[uint32]uint64 // ws → last seq written, not yet in a committed group
	committed []committedGen    // groups committed, not yet synced
	durable   map[uint32]uint64 // ws → last durable seq
	notify    chan struct{}     // closed and replaced when durable advances
}

type committedGen struct {
	gen  uint64
	seqs map[uint32]uint64
}

func (d *durability) init() {
	d.pending = map[uint32]uint64{}
	d.durable = map[uint32]uint64{}
	d.notify = make(chan struct{})
}

func (d *durability) written(ws uint32, seq uint64) {
	d.mu.Lock()
	d.pending[ws] = seq
	d.mu.Unlock()
}

// OnCommitted is the ingestion path's hook: what was written so far went
// into group gen.
func (m *Manager) OnCommitted(gen uint64) {
	m.checkpoint()
	d := &m.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return
	}
	d.committed = append(d.committed, committedGen{gen: gen, seqs: d.pending})
	d.pending = map[uint32]uint64{}
}

// OnSynced is the ingestion path's hook: every group up to gen is durable.
func (m *Manager) OnSynced(gen uint64) {
	d := &m.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	advanced := false
	i := 0
	for ; i < len(d.committed) && d.committed[i].gen <= gen; i++ {
		for ws, seq := range d.committed[i].seqs {
			if seq > d.durable[ws] {
				d.durable[ws] = seq
				advanced = true
			}
		}
	}
	d.committed = d.committed[i:]
	if advanced {
		close(d.notify)
		d.notify = make(chan struct{})
	}
}

// Durable returns a workspace's last durable change seq and a channel
// closed when it next advances.
func (m *Manager) Durable(ws uint32) (uint64, <-chan struct{}) {
	d := &m.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable[ws], d.notify
}

func (m *Manager) setDurable(ws uint32, seq uint64) {
	d := &m.dur
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq > d.durable[ws] {
		d.durable[ws] = seq
	}
}

// checkpoint starts the checkpoint of every persisted index that is due
// (index.StartCheckpoint: the heads are sealed here, the files written in
// the background) and installs those written and the merges finished. It
// runs on the applier goroutine, between commits: each index then holds
// exactly what the store committed. A checkpoint that fails is logged and
// tried again at the next commit; the journal keeps everything since the
// last good one.
func (m *Manager) checkpoint() {
	if m.opts.IndexDir == "" {
		return
	}
	now := time.Now()
	m.mu.RLock()
	spaces := slices.Collect(maps.Values(m.spaces))
	m.mu.RUnlock()
	db := m.st.DB()
	for _, sp := range spaces {
		merged := sp.ix.PartMerges()
		took, err := sp.ix.FinishCheckpoint(db)
		m.m.partMerges.Add(float64(sp.ix.PartMerges() - merged))
		if err != nil {
			m.log.Error("index checkpoint failed; the journal keeps the changes since the last one", "err", err)
		} else if took > 0 {
			m.m.checkpoint.Observe(took.Seconds())
		}
		if took, err := sp.ix.FinishMerge(db); err != nil {
			m.log.Error("index base merge failed; the journal keeps the changes since the last base", "err", err)
		} else if took > 0 {
			m.m.merge.Observe(took.Seconds())
		}
		if sp.ix.CheckpointDue(m.opts.CheckpointEvents, m.opts.CheckpointEvery, now) {
			if err := sp.ix.StartCheckpoint(db, m.st.Sync); err != nil {
				m.log.Error("index checkpoint failed; the journal keeps the changes since the last one", "err", err)
			}
		}
	}
}
