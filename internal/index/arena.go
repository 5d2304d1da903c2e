package index

import "unsafe"

// idArena holds every live root's canonical id in one pointer-free byte
// buffer, found by profile number: eight bytes of offset and the id's own
// bytes per profile, instead of a map entry and a heap string that the
// garbage collector must scan. Bytes once written are never changed, so a
// string handed out stays valid; a changed or removed id leaves garbage,
// reclaimed by copying the live ids when it reaches half the buffer.
type idArena struct {
	buf     []byte
	refs    []uint64 // by profile number: start<<24 | length+1; 0 = none
	garbage int
}

const maxIDLen = 1<<24 - 2

func (a *idArena) set(n uint32, id string) {
	if len(id) > maxIDLen {
		id = id[:maxIDLen] // ids are bounded far below this by message validation
	}
	if cur, ok := a.get(n); ok && cur == id {
		return // most profile changes keep the id
	}
	a.del(n)
	for int(n) >= len(a.refs) {
		a.refs = append(a.refs, 0)
	}
	start := len(a.buf)
	a.buf = append(a.buf, id...)
	a.refs[n] = uint64(start)<<24 | uint64(len(id)+1)
}

func (a *idArena) del(n uint32) {
	if int(n) >= len(a.refs) || a.refs[n] == 0 {
		return
	}
	a.garbage += int(a.refs[n]&(1<<24-1)) - 1
	a.refs[n] = 0
	if a.garbage > 1<<16 && a.garbage > len(a.buf)/2 {
		a.compact()
	}
}

func (a *idArena) get(n uint32) (string, bool) {
	if int(n) >= len(a.refs) || a.refs[n] == 0 {
		return "", false
	}
	r := a.refs[n]
	start, l := int(r>>24), int(r&(1<<24-1))-1
	if l == 0 {
		return "", true
	}
	// The bytes are never modified (compaction copies to a new buffer),
	// so the string may share them.
	return unsafe.String(&a.buf[start], l), true
}

// compact copies the live ids into a new buffer.
func (a *idArena) compact() {
	buf := make([]byte, 0, len(a.buf)-a.garbage)
	for n, r := range a.refs {
		if r == 0 {
			continue
		}
		start, l := int(r>>24), int(r&(1<<24-1))-1
		a.refs[n] = uint64(len(buf))<<24 | uint64(l+1)
		buf = append(buf, a.buf[start:start+l]...)
	}
	a.buf, a.garbage = buf, 0
}

// bytes is the arena's memory.
func (a *idArena) bytes() int { return cap(a.buf) + 8*cap(a.refs) }
