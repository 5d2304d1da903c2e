package index

import (
	"encoding/json"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// valEntry is one distinct value of a trait and the profiles holding it.
// Most values of a high-cardinality trait (emails, timestamps, ids) are
// held by one profile: such an entry keeps the profile number alone, and
// gets more only once a second profile holds the value (and drops it
// when one is left), which saves a bitmap's allocations — about 150 bytes
// — per unique value. A value held by a few profiles spread over the
// number space (an ltv, a zip code: tens of profiles each, at 10M
// profiles each in a roaring container of its own, about 50 bytes a
// profile) keeps their numbers as a sorted list, 4 bytes a profile, until
// a roaring bitmap would be smaller (few.go).
type valEntry struct {
	v      any
	single uint32          // the one profile, while n is 1
	few    []uint32        // the profiles, sorted, while bm is nil and n > 1
	bm     *roaring.Bitmap // the profiles, once a list would be bigger
	n      int64           // how many profiles hold the value
	inst   int64           // the value's instant, when isInst
	// isInst: a date-time string with an int64 instant; instOut: a
	// date-time outside that range.
	isInst, instOut bool
}

// rawJSON is an object trait value kept as its canonical JSON: most
// objects (an address, a location) are held by one profile each, and a
// decoded map costs several times its text. Tests that can match an
// object decode it (testValue); for every other test it is a non-null
// value of no scalar type, which is what an object is to them.
type rawJSON string

// storedValue is v as an entry keeps it: objects as their canonical JSON
// (key), anything else as it is.
func storedValue(v any, key string) any {
	if _, ok := v.(map[string]any); ok {
		return rawJSON(key)
	}
	return v
}

// value is the entry's value decoded.
func (e *valEntry) value() any {
	r, ok := e.v.(rawJSON)
	if !ok {
		return e.v
	}
	var v any
	if err := json.Unmarshal([]byte(r), &v); err != nil {
		return nil // canonical JSON written by this package: not reached
	}
	return v
}

// testValue is the entry's value as test needs it: decoded only when the
// test can match an object (near, on a point).
func (e *valEntry) testValue(test *condition.Test) any {
	if _, ok := e.v.(rawJSON); ok {
		if op, _ := test.Op.Positive(); op == condition.OpNear {
			return e.value()
		}
	}
	return e.v
}

// newValEntry makes a distinct value's entry, parsing a date-time once.
func newValEntry(v any) *valEntry {
	e := &valEntry{v: v}
	e.inst, e.isInst, e.instOut = instantOf(v)
	return e
}

// add records that profile num holds the value; false if it already did.
func (e *valEntry) add(num uint32) bool {
	switch {
	case e.bm != nil:
		if !e.bm.CheckedAdd(num) {
			return false
		}
	case e.n == 0:
		e.single = num
	case e.n == 1:
		if e.single == num {
			return false
		}
		e.few = []uint32{min(e.single, num), max(e.single, num)}
	default:
		i, found := slices.BinarySearch(e.few, num)
		if found {
			return false
		}
		e.few = slices.Insert(e.few, i, num)
		e.maybeBitmap()
	}
	e.n++
	return true
}

// remove records that profile num no longer holds the value; false if it
// did not.
func (e *valEntry) remove(num uint32) bool {
	switch {
	case e.bm != nil:
		if !e.bm.CheckedRemove(num) {
			return false
		}
		if e.n--; e.n == 1 {
			e.single, e.bm = e.bm.Minimum(), nil
		}
		return true
	case e.n == 1 && e.single == num:
		e.n = 0
		return true
	case e.n > 1:
		i, found := slices.BinarySearch(e.few, num)
		if !found {
			return false
		}
		if e.n--; e.n == 1 {
			e.single, e.few = e.few[1-i], nil
		} else {
			e.few = slices.Delete(e.few, i, i+1)
		}
		return true
	}
	return false
}

func (e *valEntry) contains(num uint32) bool {
	switch {
	case e.bm != nil:
		return e.bm.Contains(num)
	case e.n > 1:
		_, found := slices.BinarySearch(e.few, num)
		return found
	}
	return e.n == 1 && e.single == num
}

// bitmap returns the profiles holding the value, for reading only (a new
// bitmap for a single profile).
func (e *valEntry) bitmap() *roaring.Bitmap {
	switch {
	case e.bm != nil:
		return e.bm
	case e.n > 1:
		return roaring.BitmapOf(e.few...)
	case e.n == 1:
		return roaring.BitmapOf(e.single)
	}
	return roaring.New()
}

// set makes bm the profiles holding the value (building a derived
// index, reading a checkpoint): one profile is kept as a number, a few
// as a list, more as the bitmap.
func (e *valEntry) set(bm *roaring.Bitmap) {
	e.n, e.bm, e.few = int64(bm.GetCardinality()), nil, nil
	switch {
	case e.n == 1:
		e.single = bm.Minimum()
	case e.n > 1 && listSmaller(bm):
		e.few = bm.ToArray()
	case e.n > 1:
		e.bm = bm
	}
}

// gather collects the profiles of many entries for one union: the
// bitmaps of shared values, and the single profiles of the others, which
// become one bitmap at the end instead of one each.
type gather struct {
	parts   []*roaring.Bitmap
	singles []uint32
}

func (g *gather) add(e *valEntry) {
	switch {
	case e.bm != nil:
		g.parts = append(g.parts, e.bm)
	case e.n > 1:
		g.singles = append(g.singles, e.few...)
	case e.n == 1:
		g.singles = append(g.singles, e.single)
	}
}

// bitmaps is what was gathered as bitmaps to union.
func (g *gather) bitmaps() []*roaring.Bitmap {
	if len(g.singles) == 0 {
		return g.parts
	}
	slices.Sort(g.singles)
	return append(g.parts, roaring.BitmapOf(g.singles...))
}

// union is the union of what was gathered.
func (g *gather) union() *roaring.Bitmap { return union(g.bitmaps()) }
