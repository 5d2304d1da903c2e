package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cohortdb/cohort/internal/idmap"
	"github.com/cohortdb/cohort/internal/schema"
	"github.com/cohortdb/cohort/internal/store"
)

// Workspace is one workspace's in-memory ingest state.
type Workspace struct {
	Num    uint32
	Name   string
	Schema *schema.Registry

	// Owned by the applier goroutine.
	counters store.Counters
	parentMu sync.RWMutex      // the applier writes under it; readers read under it
	parent   map[uint32]uint32 // merged profile number → the one it merged into

	namesMu sync.RWMutex
	names   map[string]uint32 // event name → id

	bots bots // owned by the applier goroutine
	// ids maps every userId and anonymousId to its root profile number:
	// the applier's copy of the i ws id records (loaded at open, changed
	// with them), so resolving identity reads no store. Pointer-free: no
	// heap string per id for the collector to scan.
	ids *idmap.Map
}

// find returns the root profile a (possibly merged) profile number belongs to.
func (w *Workspace) find(n uint32) uint32 {
	for {
		p, ok := w.parent[n]
		if !ok {
			return n
		}
		n = p
	}
}

// EventNameID returns an event name's id.
func (w *Workspace) EventNameID(name string) (uint32, bool) {
	w.namesMu.RLock()
	defer w.namesMu.RUnlock()
	id, ok := w.names[name]
	return id, ok
}

func (w *Workspace) numEventNames() int {
	w.namesMu.RLock()
	defer w.namesMu.RUnlock()
	return len(w.names)
}

func loadWorkspace(st *store.Store, rec store.Workspace) (*Workspace, error) {
	db := st.DB()
	w := &Workspace{Num: rec.Num, Name: rec.Name, Schema: schema.New(), parent: map[uint32]uint32{}, names: map[string]uint32{}}
	var err error
	if w.counters, err = store.ReadCounters(db, w.Num); err != nil {
		return nil, fmt.Errorf("workspace %q counters: %w", w.Name, err)
	}
	if err := store.ScanLinks(db, w.Num, func(from, to uint32) error { w.parent[from] = to; return nil }); err != nil {
		return nil, fmt.Errorf("workspace %q merges: %w", w.Name, err)
	}
	if err := store.ScanEventNames(db, w.Num, func(name string, id uint32) error { w.names[name] = id; return nil }); err != nil {
		return nil, fmt.Errorf("workspace %q event names: %w", w.Name, err)
	}
	if err := store.ScanSchema(db, w.Num, w.Schema.Load); err != nil {
		return nil, fmt.Errorf("workspace %q schema: %w", w.Name, err)
	}
	if err := loadBots(st, w); err != nil {
		return nil, err
	}
	// The store holds each id once: Load looks none up, and a table sized
	// for about one id a profile rehashes none while they load.
	w.ids = idmap.NewSized(int(w.counters.NextProfile) + int(w.counters.NextProfile)/8)
	if err := store.ScanIDs(db, w.Num, func(id []byte, num uint32) error { w.ids.Load(id, num); return nil }); err != nil {
		return nil, fmt.Errorf("workspace %q ids: %w", w.Name, err)
	}
	return w, nil
}

// Workspace returns a workspace by number.
func (g *Ingester) Workspace(num uint32) (*Workspace, bool) {
	g.wsMu.RLock()
	defer g.wsMu.RUnlock()
	w, ok := g.byNum[num]
	return w, ok
}

// WorkspaceByName returns a workspace by name.
func (g *Ingester) WorkspaceByName(name string) (*Workspace, bool) {
	g.wsMu.RLock()
	defer g.wsMu.RUnlock()
	w, ok := g.byName[name]
	return w, ok
}

// Keys are the credentials of a workspace, in the clear. They exist only
// in the answer that created them; the store keeps their hashes.
type Keys struct {
	WriteKey string `json:"write_key"`
	APIKey   string `json:"api_key"`
}

// NewKey returns a fresh random key with a prefix saying what it is.
func NewKey(prefix string) string {
	b := make([]byte, 20)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ErrExists reports a workspace name already taken.
var ErrExists = fmt.Errorf("already exists")

// CreateWorkspace creates a workspace with the given keys; an empty key is
// generated. It fails with ErrExists when the name is taken.
func (g *Ingester) CreateWorkspace(ctx context.Context, name string, keys Keys) (*Workspace, Keys, error) {
	g.wsMu.Lock()
	defer g.wsMu.Unlock()
	if _, ok := g.byName[name]; ok {
		return nil, Keys{}, fmt.Errorf("workspace %q: %w", name, ErrExists)
	}
	if keys.WriteKey == "" {
		keys.WriteKey = NewKey("wk_")
	}
	if keys.APIKey == "" {
		keys.APIKey = NewKey("ak_")
	}
	var num uint32 = 1
	for n := range g.byNum {
		num = max(num, n+1)
	}
	rec := store.Workspace{Name: name, Num: num, CreatedAt: g.now().UTC()}
	b := g.st.DB().NewBatch()
	defer b.Close()
	if err := store.PutWorkspace(b, rec); err != nil {
		return nil, Keys{}, err
	}
	if err := store.PutKey(b, keys.WriteKey, store.KeyRecord{Role: store.RoleWrite, Workspace: num, CreatedAt: rec.CreatedAt}); err != nil {
		return nil, Keys{}, err
	}
	if err := store.PutKey(b, keys.APIKey, store.KeyRecord{Role: store.RoleAPI, Workspace: num, CreatedAt: rec.CreatedAt}); err != nil {
		return nil, Keys{}, err
	}
	if err := b.Commit(syncWrite); err != nil {
		return nil, Keys{}, fmt.Errorf("create workspace %q: %w", name, err)
	}
	w := &Workspace{Num: num, Name: name, Schema: schema.New(), parent: map[uint32]uint32{}, names: map[string]uint32{}}
	w.bots.init()
	w.ids = idmap.New()
	g.byNum[num], g.byName[name] = w, w
	g.log.Info("workspace created", "workspace", name)
	g.log.Info("key added", "workspace", name, "role", "write", "key_id", store.KeyID(keys.WriteKey), "by", "workspace creation")
	g.log.Info("key added", "workspace", name, "role", "api", "key_id", store.KeyID(keys.APIKey), "by", "workspace creation")
	return w, keys, nil
}

func (g *Ingester) now() time.Time { return g.opts.Now() }

// ProfileNums returns root and every profile number merged into it: the
// numbers its events are recorded under.
func (g *Ingester) ProfileNums(w *Workspace, root uint32) []uint32 {
	w.parentMu.RLock()
	defer w.parentMu.RUnlock()
	out := []uint32{root}
	for from := range w.parent {
		if from != root && w.find(from) == root {
			out = append(out, from)
		}
	}
	slices.Sort(out)
	return out
}
