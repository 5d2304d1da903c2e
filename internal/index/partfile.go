package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"
)

// A part file holds one sealed part's arrays as they are in memory, so
// that opening it is a mapping, not a decoding (docs/format.md, "Index
// files"): a header, then each array at an 8-byte boundary, then a
// CRC-32C of everything before it. Integers are little-endian; the arrays
// are read in place, so a big-endian host does not persist its index.

const (
	partMagic   = "COHPART1"
	partVersion = 2  // 1: no presence by day
	partHeader  = 48 // magic, version, ncols, n, nheads, nblocks, ndays (version 1: 40, no ndays)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks an index file that fails its checksum or does not
// parse: the index is rebuilt from the stored events.
var ErrCorrupt = errors.New("index file is corrupt")

// hostLittleEndian reports whether arrays can be written and mapped as
// they are in memory.
func hostLittleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }

// partFile is a part's mapped file.
type partFile struct {
	name string // base name in the index directory
	mm   []byte
}

func (f *partFile) close() error {
	if f == nil || f.mm == nil {
		return nil
	}
	err := syscall.Munmap(f.mm)
	f.mm = nil
	return err
}

// bytesOf views a slice's memory as bytes.
func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// sliceOf views n elements of T at b[off:] (which the caller checked).
func sliceOf[T any](b []byte, off, n int) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[off])), n)
}

// writePart writes p to dir/name, synced.
func writePart(dir, name string, p *part) error {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write index part: %w", err)
	}
	defer f.Close()
	h := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 64<<10)
	hdr := make([]byte, 0, partHeader+len(p.ids)+8)
	hdr = append(hdr, partMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, partVersion)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(p.ids)))
	hprof, hpos := p.sortedHeads()
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(p.prof)))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(hprof)))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(p.blocks)))
	days := p.days
	if days == nil {
		days = makeDays(&p.run)
	}
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(days.keys)))
	for _, ids := range p.ids {
		if ids == nil {
			hdr = append(hdr, 0)
		} else {
			hdr = append(hdr, ids.width)
		}
	}
	bw.Write(hdr)
	pos := int64(len(hdr))
	section := func(b []byte) {
		for pos%8 != 0 {
			bw.WriteByte(0)
			pos++
		}
		bw.Write(b)
		pos += int64(len(b))
	}
	section(bytesOf(p.prof))
	section(bytesOf(p.ts))
	section(bytesOf(p.next))
	section(bytesOf(hprof))
	section(bytesOf(hpos))
	section(bytesOf(p.blocks))
	for _, ids := range p.ids {
		switch {
		case ids == nil:
		case ids.width == 1:
			section(ids.b[:ids.n])
		case ids.width == 2:
			section(bytesOf(ids.h[:ids.n]))
		default:
			section(bytesOf(ids.w[:ids.n]))
		}
	}
	// Presence by day: the bitmaps' keys, their offsets (each starting
	// at a multiple of 8), the bitmaps.
	off := make([]uint64, 0, len(days.keys)+1)
	var raw []byte
	for i := range days.keys {
		off = append(off, uint64(len(raw)))
		b, err := days.bitmap(i).ToBytes()
		if err != nil {
			return fmt.Errorf("write index part %s: %w", name, err)
		}
		raw = append(raw, b...)
		for len(raw)%8 != 0 {
			raw = append(raw, 0)
		}
	}
	off = append(off, uint64(len(raw)))
	section(bytesOf(days.keys))
	section(bytesOf(off))
	section(raw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write index part %s: %w", name, err)
	}
	trailer := binary.LittleEndian.AppendUint32(nil, h.Sum32())
	trailer = append(trailer, "CEND"...)
	if _, err := f.Write(trailer); err != nil {
		return fmt.Errorf("write index part %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync index part %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close index part %s: %w", name, err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("name index part %s: %w", name, err)
	}
	return nil
}

// openPart maps dir/name, checks its checksum and returns the part it
// holds. A file that fails is reported with ErrCorrupt and its name.
func openPart(dir, name string) (*part, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		// A checkpoint names it: missing or unreadable, it is damage.
		return nil, fmt.Errorf("open index part: %v: %w", err, ErrCorrupt)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open index part: %w", err)
	}
	size := st.Size()
	if size < partHeader+8 {
		return nil, fmt.Errorf("index part %s: %d bytes: %w", path, size, ErrCorrupt)
	}
	mm, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map index part %s: %w", path, err)
	}
	pf := &partFile{name: name, mm: mm}
	p, err := parsePart(mm)
	if err != nil {
		pf.close()
		return nil, fmt.Errorf("index part %s: %w", path, err)
	}
	p.file = pf
	return p, nil
}

// parsePart reads a part's arrays in place from a file's bytes.
func parsePart(b []byte) (*part, error) {
	body, trailer := b[:len(b)-8], b[len(b)-8:]
	if string(trailer[4:]) != "CEND" || string(body[:8]) != partMagic {
		return nil, fmt.Errorf("not a part file: %w", ErrCorrupt)
	}
	if got, want := crc32.Checksum(body, crcTable), binary.LittleEndian.Uint32(trailer); got != want {
		return nil, fmt.Errorf("checksum %08x, want %08x: %w", got, want, ErrCorrupt)
	}
	hdrLen := partHeader
	switch v := binary.LittleEndian.Uint32(body[8:]); v {
	case 1:
		hdrLen = 40
	case partVersion:
	default:
		return nil, fmt.Errorf("part format version %d, this build reads 1 and %d: %w", v, partVersion, ErrCorrupt)
	}
	if len(body) < hdrLen {
		return nil, fmt.Errorf("header cut short: %w", ErrCorrupt)
	}
	ncols := int(binary.LittleEndian.Uint32(body[12:]))
	n := int(binary.LittleEndian.Uint64(body[16:]))
	nh := int(binary.LittleEndian.Uint64(body[24:]))
	nb := int(binary.LittleEndian.Uint64(body[32:]))
	nd := -1 // no presence by day
	if hdrLen == partHeader {
		nd = int(binary.LittleEndian.Uint64(body[40:]))
	}
	if ncols > len(body)-hdrLen || n > len(body) || nh > n || nb > n+1 || nd > n*(1+maxDayCols*maxDayValues) {
		return nil, fmt.Errorf("header out of range: %w", ErrCorrupt)
	}
	widths := body[hdrLen : hdrLen+ncols]
	pos := hdrLen + ncols
	var bad bool
	take := func(bytes int) int {
		pos = (pos + 7) &^ 7
		at := pos
		pos += bytes
		if pos > len(body) {
			bad = true
			return 0
		}
		return at
	}
	p := &part{}
	offProf, offTs, offNext := take(4*n), take(8*n), take(4*n)
	offHp, offHpos, offBl := take(4*nh), take(4*nh), take(16*nb)
	type colAt struct{ off, width int }
	cols := make([]colAt, ncols)
	for k, w := range widths {
		switch w {
		case 0, 1, 2, 4:
		default:
			return nil, fmt.Errorf("column %d of width %d: %w", k, w, ErrCorrupt)
		}
		cols[k] = colAt{take(int(w) * n), int(w)}
	}
	if nd >= 0 {
		offKeys, offOff := take(8*nd), take(8*(nd+1))
		if bad {
			return nil, fmt.Errorf("sections do not fit the file: %w", ErrCorrupt)
		}
		d := &partDays{keys: sliceOf[uint64](body, offKeys, nd), off: sliceOf[uint64](body, offOff, nd+1)}
		if !slices.IsSorted(d.keys) {
			return nil, fmt.Errorf("presence by day: keys out of order: %w", ErrCorrupt)
		}
		d.cols = colsOf(d.keys)
		if d.off[nd] > uint64(len(body)) {
			return nil, fmt.Errorf("presence by day out of range: %w", ErrCorrupt)
		}
		at := take(int(d.off[nd]))
		if bad {
			return nil, fmt.Errorf("sections do not fit the file: %w", ErrCorrupt)
		}
		d.raw = body[at : at+int(d.off[nd])]
		for i := range nd {
			if d.off[i] > d.off[i+1] || d.off[i]%8 != 0 {
				return nil, fmt.Errorf("presence by day: offset %d out of order: %w", i, ErrCorrupt)
			}
			if _, err := roaring.New().FromBuffer(d.raw[d.off[i]:d.off[i+1]]); err != nil {
				return nil, fmt.Errorf("presence by day: bitmap %d: %v: %w", i, err, ErrCorrupt)
			}
		}
		p.days = d
	}
	if bad || pos != len(body) {
		return nil, fmt.Errorf("sections do not fit the file: %w", ErrCorrupt)
	}
	p.prof = sliceOf[uint32](body, offProf, n)
	p.ts = sliceOf[int64](body, offTs, n)
	p.next = sliceOf[int32](body, offNext, n)
	p.hprof = sliceOf[uint32](body, offHp, nh)
	p.hpos = sliceOf[int32](body, offHpos, nh)
	p.blocks = sliceOf[block](body, offBl, nb)
	p.ids = make([]*idCol, ncols)
	for k, c := range cols {
		switch c.width {
		case 1:
			p.ids[k] = &idCol{b: sliceOf[uint8](body, c.off, n), n: n, width: 1}
		case 2:
			p.ids[k] = &idCol{h: sliceOf[uint16](body, c.off, n), n: n, width: 2}
		case 4:
			p.ids[k] = &idCol{w: sliceOf[uint32](body, c.off, n), n: n, width: 4}
		}
	}
	p.bounds()
	p.first = p.firstPos
	return p, nil
}
