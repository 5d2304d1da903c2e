package index

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// A checkpoint file holds everything of an index but the sealed parts'
// arrays (those are in part files, which it names): the profile sets,
// merges, canonical ids, trait values with their profiles, and every
// event column's dictionaries, counts and parts. docs/format.md, "Index
// files", gives the layout.

const (
	metaMagic   = "COHINDX1"
	metaVersion = 2 // 1: no sections byte, both sections
)

// The sections of a checkpoint file. A full one holds both; the periodic
// checkpoint writes the events section alone, and a base file written in
// the background holds the profiles section alone (checkpoint.go).
const (
	secProfiles = 1 << iota // profile sets, links, ids, traits
	secEvents               // event columns: dictionaries, counts, parts
	secAll      = secProfiles | secEvents
)

// Value tags of encoded dictionary and trait values.
const (
	valNull = iota
	valFalse
	valTrue
	valNumber
	valString
	valJSON // objects, arrays and anything else, as canonical JSON
)

type metaWriter struct {
	w   *bufio.Writer
	h   hash.Hash32
	buf []byte
	err error
}

func newMetaWriter(w io.Writer) *metaWriter {
	h := crc32.New(crcTable)
	return &metaWriter{w: bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10), h: h}
}

func (m *metaWriter) raw(b []byte) {
	if m.err == nil {
		_, m.err = m.w.Write(b)
	}
}

func (m *metaWriter) tag(t byte) {
	if m.err == nil {
		m.err = m.w.WriteByte(t)
	}
}

// The scratch buffer m.buf keeps encoding free of allocations: a
// checkpoint writes millions of values.
func (m *metaWriter) uvarint(v uint64) {
	m.buf = binary.AppendUvarint(m.buf[:0], v)
	m.raw(m.buf)
}

func (m *metaWriter) u64(v uint64) {
	m.buf = binary.LittleEndian.AppendUint64(m.buf[:0], v)
	m.raw(m.buf)
}

func (m *metaWriter) bytes(b []byte) { m.uvarint(uint64(len(b))); m.raw(b) }

func (m *metaWriter) str(s string) {
	m.uvarint(uint64(len(s)))
	if m.err == nil {
		_, m.err = m.w.WriteString(s)
	}
}

func (m *metaWriter) bitmap(bm *roaring.Bitmap) {
	m.uvarint(bm.GetSerializedSizeInBytes())
	if m.err == nil {
		_, m.err = bm.WriteTo(m.w)
	}
}

func (m *metaWriter) value(v any) {
	switch x := v.(type) {
	case nil:
		m.tag(valNull)
	case bool:
		if x {
			m.tag(valTrue)
		} else {
			m.tag(valFalse)
		}
	case string:
		m.tag(valString)
		m.str(x)
	case rawJSON:
		m.tag(valJSON)
		m.str(string(x))
	case float64:
		m.tag(valNumber)
		m.u64(math.Float64bits(x))
	default:
		if f, ok := condition.Number(v); ok && !math.IsNaN(f) {
			m.tag(valNumber)
			m.u64(math.Float64bits(f))
			return
		}
		m.tag(valJSON)
		m.str(condition.CanonicalJSON(v))
	}
}

// finish writes the checksum trailer.
func (m *metaWriter) finish() error {
	if m.err != nil {
		return m.err
	}
	if err := m.w.Flush(); err != nil {
		return err
	}
	sum := m.h.Sum32()
	m.raw(append(binary.LittleEndian.AppendUint32(nil, sum), "CEND"...))
	if m.err != nil {
		return m.err
	}
	return m.w.Flush()
}

// metaHeader is the fixed fields of a checkpoint file.
type metaHeader struct {
	ws                      uint32
	seq, storeSeq, nextPart uint64
	retainFrom              int64
	maxNum                  uint32
}

// header is x's header as of journal entry seq.
func (x *Index) header(seq, storeSeq uint64) metaHeader {
	return metaHeader{ws: x.ws, seq: seq, storeSeq: storeSeq, nextPart: x.nextPart, retainFrom: x.retainFrom, maxNum: x.maxNum}
}

// writeMetaFile encodes a checkpoint file: the header, the profiles'
// side when profiles is set, the event columns when events is.
func writeMetaFile(w io.Writer, h metaHeader, profiles func(*metaWriter), cols []colSnap, events bool) error {
	sections := byte(0)
	if profiles != nil {
		sections |= secProfiles
	}
	if events {
		sections |= secEvents
	}
	m := newMetaWriter(w)
	m.raw([]byte(metaMagic))
	m.u64(metaVersion)
	m.tag(sections)
	m.u64(uint64(h.ws))
	m.u64(h.seq)
	m.u64(h.storeSeq)
	m.u64(h.nextPart)
	m.u64(uint64(h.retainFrom))
	m.u64(uint64(h.maxNum))
	if profiles != nil {
		profiles(m)
	}
	if events {
		writeEvents(m, cols)
	}
	return m.finish()
}

func (x *Index) writeProfiles(m *metaWriter) {
	m.bitmap(x.all)
	m.bitmap(x.merged)
	m.bitmap(x.deleted)
	m.uvarint(uint64(len(x.parent)))
	for _, from := range slices.Sorted(maps.Keys(x.parent)) {
		m.uvarint(uint64(from))
		m.uvarint(uint64(x.parent[from]))
	}
	m.bytes(bytesOf(x.ids.refs)) // with the arena's garbage, if any: refs skip it
	m.bytes(x.ids.buf)
	m.uvarint(uint64(len(x.traits)))
	for _, name := range slices.Sorted(maps.Keys(x.traits)) {
		t := x.traits[name]
		m.str(name)
		m.bitmap(t.keys)
		m.uvarint(uint64(len(t.vals)))
		for _, e := range t.vals {
			m.value(e.v)
			m.uvarint(uint64(e.n))
			if e.n <= 1 {
				m.uvarint(uint64(e.single))
			} else {
				m.bitmap(e.bitmap()) // a list is written as a bitmap: the format is unchanged
			}
		}
	}
}

// colSnap is what a checkpoint file holds of an event column, copied
// (or captured: dictionaries are only appended to) so that it can be
// written while the writer goes on.
type colSnap struct {
	name       string
	hasDeleted bool
	paths      []string
	dicts      [][]any
	counts     [][]uint32
	parts      []string
}

// snapEvents copies the event columns for a checkpoint file. Every part
// must have a file, or a name in named (a part being written); a part in
// replaced is named by the merged part that replaces it (the first of a
// merge's parts) or not at all (the others).
func (x *Index) snapEvents(named, replaced map[*part]string) ([]colSnap, error) {
	var out []colSnap
	for _, name := range slices.Sorted(maps.Keys(x.events)) {
		c := x.events[name]
		if len(c.prof) != 0 {
			return nil, fmt.Errorf("checkpoint of %q with %d events in its head", name, len(c.prof))
		}
		s := colSnap{name: name, hasDeleted: c.hasDeleted, paths: make([]string, len(c.order))}
		for p, col := range c.props {
			s.paths[col.k] = p
		}
		for _, col := range c.order {
			s.dicts = append(s.dicts, col.dict[:len(col.dict):len(col.dict)])
			s.counts = append(s.counts, slices.Clone(col.counts))
		}
		for _, p := range c.parts {
			if f, ok := replaced[p]; ok {
				if f != "" {
					s.parts = append(s.parts, f)
				}
				continue
			}
			switch {
			case p.file != nil:
				s.parts = append(s.parts, p.file.name)
			case named[p] != "":
				s.parts = append(s.parts, named[p])
			default:
				return nil, fmt.Errorf("checkpoint of %q with a part not written", name)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func writeEvents(m *metaWriter, cols []colSnap) {
	m.uvarint(uint64(len(cols)))
	for _, c := range cols {
		m.str(c.name)
		hd := uint64(0)
		if c.hasDeleted {
			hd = 1
		}
		m.uvarint(hd)
		m.uvarint(uint64(len(c.paths)))
		for k, path := range c.paths {
			m.str(path)
			m.uvarint(uint64(len(c.dicts[k])))
			for _, v := range c.dicts[k][1:] {
				m.value(v)
			}
			m.bytes(bytesOf(c.counts[k]))
		}
		m.uvarint(uint64(len(c.parts)))
		for _, p := range c.parts {
			m.str(p)
		}
	}
}

// binReader decodes checkpoint files and journal entries, remembering
// the first problem (reads after it return zeros).
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, ErrCorrupt)
	}
	r.b = nil
}

func (r *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("length past the end")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a number of items, each at least one byte long.
func (r *binReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count past the end")
		return 0
	}
	return int(n)
}

func (r *binReader) bitmap() *roaring.Bitmap {
	bm := roaring.New()
	if b := r.bytes(); r.err == nil {
		if _, err := bm.FromBuffer(b); err != nil {
			r.fail("bitmap: " + err.Error())
		}
		bm = bm.Clone() // own its memory: the file's bytes are dropped
	}
	return bm
}

// value reads a value; objects stay canonical JSON text when objects is
// set (trait values) and are decoded otherwise (dictionaries).
func (r *binReader) value(objects bool) any {
	if len(r.b) == 0 {
		r.fail("truncated value")
		return nil
	}
	tag := r.b[0]
	r.b = r.b[1:]
	switch tag {
	case valNull:
		return nil
	case valFalse:
		return false
	case valTrue:
		return true
	case valNumber:
		return math.Float64frombits(r.u64())
	case valString:
		return string(r.bytes())
	case valJSON:
		b := r.bytes()
		if len(b) > 0 && b[0] == '{' && objects {
			return rawJSON(b) // a trait's object stays text (entry.go)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			r.fail("value: " + err.Error())
		}
		return v
	}
	r.fail(fmt.Sprintf("value tag %d", tag))
	return nil
}

// metaFile is a checkpoint file read: the sections it holds, in a new
// index whose parts are named but not opened (partNames, by event name in
// order).
type metaFile struct {
	x         *Index
	sections  byte
	seq       uint64 // the last journal entry it includes
	storeSeq  uint64
	partNames map[string][]string
}

// readMeta reads a checkpoint file.
func readMeta(path string) (*metaFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// CURRENT names it: missing or unreadable, it is damage.
		return nil, fmt.Errorf("read index checkpoint: %v: %w", err, ErrCorrupt)
	}
	if len(b) < len(metaMagic)+8 || string(b[:len(metaMagic)]) != metaMagic || string(b[len(b)-4:]) != "CEND" {
		return nil, fmt.Errorf("index checkpoint %s: not a checkpoint file: %w", path, ErrCorrupt)
	}
	body := b[:len(b)-8]
	if got, want := crc32.Checksum(body, crcTable), binary.LittleEndian.Uint32(b[len(b)-8:]); got != want {
		return nil, fmt.Errorf("index checkpoint %s: checksum %08x, want %08x: %w", path, got, want, ErrCorrupt)
	}
	r := &binReader{b: body[len(metaMagic):]}
	mf := &metaFile{sections: secAll, partNames: map[string][]string{}}
	switch v := r.u64(); v {
	case 1:
	case metaVersion:
		mf.sections = r.byte()
	default:
		return nil, fmt.Errorf("index checkpoint %s: format version %d, this build reads 1 and %d: %w", path, v, metaVersion, ErrCorrupt)
	}
	x := New()
	mf.x = x
	x.ws = uint32(r.u64())
	mf.seq = r.u64()
	x.jseq, x.ckptSeq = mf.seq, mf.seq
	mf.storeSeq = r.u64()
	x.nextPart = r.u64()
	x.retainFrom = int64(r.u64())
	x.maxNum = uint32(r.u64())
	if mf.sections&secProfiles != 0 {
		x.readProfiles(r)
	}
	if mf.sections&secEvents != 0 {
		x.readEvents(r, mf.partNames)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("bytes after the end")
	}
	if r.err != nil {
		return nil, fmt.Errorf("index checkpoint %s: %w", path, r.err)
	}
	return mf, nil
}

func (r *binReader) byte() byte {
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (x *Index) readProfiles(r *binReader) {
	x.all, x.merged, x.deleted = r.bitmap(), r.bitmap(), r.bitmap()
	for range r.count() {
		from, to := uint32(r.uvarint()), uint32(r.uvarint())
		x.parent[from] = to
		x.kids[to] = append(x.kids[to], from)
	}
	refs := r.bytes()
	if len(refs)%8 != 0 {
		r.fail("id refs")
	}
	x.ids.refs = make([]uint64, len(refs)/8)
	for i := range x.ids.refs {
		x.ids.refs[i] = binary.LittleEndian.Uint64(refs[8*i:])
	}
	x.ids.buf = slices.Clone(r.bytes())
	for range r.count() {
		name := string(r.bytes())
		t := newTraitIdx()
		t.keys = r.bitmap()
		nv := r.count()
		t.vals = make(map[string]*valEntry, nv)
		for range nv {
			e := newValEntry(r.value(true))
			if n := int64(r.uvarint()); n <= 1 {
				e.n, e.single = n, uint32(r.uvarint())
			} else {
				e.set(r.bitmap())
			}
			t.vals[canonKey(e.v)] = e
		}
		x.traits[name] = t
	}
}

func (x *Index) readEvents(r *binReader, partNames map[string][]string) {
	for range r.count() {
		name := string(r.bytes())
		c := &eventCol{props: map[string]*propCol{}, byProf: map[uint32]int32{}, hasDeleted: r.uvarint() == 1}
		for k := range r.count() {
			path := string(r.bytes())
			col := &propCol{k: k, ids: newIDCol(0), dict: []any{nil}, byKey: map[string]uint32{}}
			nd := int(r.uvarint())
			for id := 1; id < nd && r.err == nil; id++ {
				v := r.value(false)
				col.dict = append(col.dict, v)
				col.index(v, uint32(id))
			}
			counts := r.bytes()
			col.counts = make([]uint32, len(counts)/4)
			for i := range col.counts {
				col.counts[i] = binary.LittleEndian.Uint32(counts[4*i:])
			}
			c.props[path] = col
			c.order = append(c.order, col)
		}
		for range r.count() {
			partNames[name] = append(partNames[name], string(r.bytes()))
		}
		x.events[name] = c
	}
}
