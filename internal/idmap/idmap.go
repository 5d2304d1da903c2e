// Package idmap is a hash map from id strings (userIds, anonymousIds) to
// profile numbers that holds no Go pointers: the ids' bytes are in one
// arena and the table is two slices of integers. A Go map[string]uint32
// costs a heap string and a 24-byte slot per id, and the collector scans
// every one of those strings at each cycle; at 10M profiles that is about
// 12M strings. Here an id costs its bytes, one length byte, and 12 bytes of
// table at three-quarters load, and the collector scans nothing.
//
// A Map is not safe for concurrent use: its owner (the ingest applier)
// serializes every call.
package idmap

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// A slot is 0 (empty), tombstone (deleted), or the entry's arena offset
// plus one in the low 40 bits with 24 bits of its hash above them, so
// that most probes that miss compare no bytes.
const (
	offBits   = 40
	offMask   = 1<<offBits - 1
	tombstone = offMask // an offset no arena reaches
	minSlots  = 16
)

// Map maps ids to profile numbers.
type Map struct {
	seed  maphash.Seed
	arena []byte   // uvarint length, then the id's bytes, for each entry
	slots []uint64 // open addressing, linear probing; len is a power of two
	vals  []uint32 // by slot
	live  int      // entries
	used  int      // slots not empty (live and tombstones)
	dead  int      // arena bytes of deleted entries
}

// New returns an empty map.
func New() *Map {
	return &Map{seed: maphash.MakeSeed()}
}

// NewSized returns an empty map whose table holds n ids before it grows:
// loading a known number of ids then rehashes none.
func NewSized(n int) *Map {
	m := New()
	size := minSlots
	for 3*size < 4*n {
		size *= 2
	}
	m.slots, m.vals = make([]uint64, size), make([]uint32, size)
	return m
}

// Len is the number of ids in the map.
func (m *Map) Len() int { return m.live }

// Bytes is the memory the map holds: arena and table.
func (m *Map) Bytes() int { return cap(m.arena) + 8*cap(m.slots) + 4*cap(m.vals) }

// Get returns id's number.
func (m *Map) Get(id string) (uint32, bool) {
	if i, ok := m.find(id, maphash.String(m.seed, id)); ok {
		return m.vals[i], true
	}
	return 0, false
}

// Set maps id to n.
func (m *Map) Set(id string, n uint32) {
	h := maphash.String(m.seed, id)
	if i, ok := m.find(id, h); ok {
		m.vals[i] = n
		return
	}
	m.insert(id, h, n)
}

// insert adds id, which the map does not hold, with its hash h.
func (m *Map) insert(id string, h uint64, n uint32) {
	if 4*(m.used+1) > 3*len(m.slots) {
		m.grow()
	}
	off := len(m.arena)
	m.arena = binary.AppendUvarint(m.arena, uint64(len(id)))
	m.arena = append(m.arena, id...)
	i := m.free(h)
	if m.slots[i] == 0 {
		m.used++
	}
	m.slots[i] = slot(off, h)
	m.vals[i] = n
	m.live++
}

// Load adds an id the map does not hold, as bytes it copies, without
// looking for it first: for loading ids from a source that holds each
// once (the store's id records). An id already held would be held twice.
func (m *Map) Load(id []byte, n uint32) {
	m.insert(unsafeString(id), maphash.Bytes(m.seed, id), n)
}

// Delete removes id.
func (m *Map) Delete(id string) {
	i, ok := m.find(id, maphash.String(m.seed, id))
	if !ok {
		return
	}
	_, size := m.entry(m.slots[i])
	m.slots[i] = tombstone
	m.vals[i] = 0
	m.live--
	m.dead += size
	if m.dead > 1<<20 && m.dead > len(m.arena)/2 {
		m.rebuild(len(m.slots))
	}
}

func slot(off int, h uint64) uint64 {
	return h>>offBits<<offBits | uint64(off+1)
}

// entry is the id a slot names (valid until the arena next grows) and the
// arena bytes it takes.
func (m *Map) entry(s uint64) (string, int) {
	off := int(s&offMask) - 1
	l, n := binary.Uvarint(m.arena[off:])
	return unsafeString(m.arena[off+n : off+n+int(l)]), n + int(l)
}

// find returns the slot holding id.
func (m *Map) find(id string, h uint64) (int, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	mask := len(m.slots) - 1
	tag := h >> offBits
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := m.slots[i]
		switch {
		case s == 0:
			return 0, false
		case s == tombstone || s>>offBits != tag:
			continue
		}
		if got, _ := m.entry(s); got == id {
			return i, true
		}
	}
}

// free returns the first empty or deleted slot on h's probe sequence.
func (m *Map) free(h uint64) int {
	mask := len(m.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		if s := m.slots[i]; s == 0 || s == tombstone {
			return i
		}
	}
}

// grow doubles the table when it holds more live entries than tombstones,
// and otherwise rebuilds it at its size, dropping the tombstones.
func (m *Map) grow() {
	n := max(len(m.slots), minSlots)
	if 2*m.live >= m.used {
		n *= 2
	}
	m.rebuild(n)
}

// rebuild copies the live entries into a table of n slots and, when the
// arena holds deleted entries, a new arena.
func (m *Map) rebuild(n int) {
	old, oldVals, oldArena := m.slots, m.vals, m.arena
	m.slots, m.vals = make([]uint64, n), make([]uint32, n)
	if m.dead > 0 {
		m.arena = make([]byte, 0, len(oldArena)-m.dead)
	}
	m.used = 0
	for i, s := range old {
		if s == 0 || s == tombstone {
			continue
		}
		off := int(s&offMask) - 1
		if m.dead > 0 {
			l, k := binary.Uvarint(oldArena[off:])
			start := len(m.arena)
			m.arena = append(m.arena, oldArena[off:off+k+int(l)]...)
			off = start
		}
		// The slot keeps 24 bits of the hash; the probe start needs the rest.
		id, _ := m.entry(uint64(off + 1))
		h := maphash.String(m.seed, id)
		j := m.free(h)
		m.slots[j] = slot(off, h)
		m.vals[j] = oldVals[i]
		m.used++
	}
	m.dead = 0
}

// unsafeString is b as a string without a copy; b must not change while
// the string is in use.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
