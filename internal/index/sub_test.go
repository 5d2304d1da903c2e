package index

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/model"
)

// TestDottedTraitKeptCurrent checks that a dotted trait name answers from
// the derived index of the sub-path, and that the derived index follows
// later changes: values changed, removed, replaced by non-objects, and a
// literal dotted key that wins over the nested path.
func TestDottedTraitKeptCurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	cities := []string{"Paris", "paris", "Berlin", "Lagos"}
	randAddr := func() any {
		switch r.IntN(6) {
		case 0:
			return "not an object"
		case 1:
			return map[string]any{"zip": float64(r.IntN(5))}
		case 2:
			return map[string]any{"city": nil}
		}
		return map[string]any{"city": cities[r.IntN(len(cities))], "zip": float64(r.IntN(5))}
	}
	x := New()
	traits := map[uint32]map[string]any{}
	apply := func(num uint32, cur map[string]any) {
		old := traits[num]
		x.Apply(&ingest.Changes{Profiles: []ingest.ProfileChange{{Num: num, OldID: fmt.Sprint(num), NewID: fmt.Sprint(num), Old: old, New: cur}}})
		traits[num] = cur
	}
	for n := range uint32(300) {
		tr := map[string]any{"plan": "pro"}
		if r.IntN(4) > 0 {
			tr["address"] = randAddr()
		}
		apply(n, tr)
	}
	conds := []string{
		`{"trait":"address.city","op":"eq","value":"paris","ignore_case":true}`,
		`{"trait":"address.city","op":"neq","value":"Berlin"}`,
		`{"trait":"address.zip","op":"gte","value":2}`,
		`{"trait":"address.city","op":"exists"}`,
		`{"trait":"address.city","op":"not_exists"}`,
	}
	now := time.Now()
	check := func(round int) {
		t.Helper()
		x.RLock()
		defer x.RUnlock()
		for _, src := range conds {
			n, err := condition.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			want := roaring.New()
			for num, tr := range traits {
				v, ok := model.Lookup(tr, n.Name)
				if n.Test.Match(v, ok, now) {
					want.Add(num)
				}
			}
			if got := x.Trait(n, now); !got.Equals(want) {
				t.Fatalf("round %d, %s: index %d profiles, brute force %d", round, src, got.GetCardinality(), want.GetCardinality())
			}
		}
		// The derived index's keys: the profiles whose object has the path.
		for _, rest := range []string{"city", "zip"} {
			want := roaring.New()
			for num, tr := range traits {
				if _, ok := subValue(tr["address"], tr["address"] != nil, rest); ok {
					want.Add(num)
				}
			}
			if got := x.traits["address"].sub(rest).keys; !got.Equals(want) {
				t.Fatalf("round %d: address.%s has %d keys, brute force %d", round, rest, got.GetCardinality(), want.GetCardinality())
			}
		}
	}
	for round := range 6 {
		check(round) // the first round builds the derived indexes
		for range 80 {
			num := uint32(r.IntN(300))
			tr := map[string]any{"plan": "pro"}
			switch r.IntN(5) {
			case 0: // no address
			case 1:
				tr["address.city"] = "Lagos" // a literal dotted key wins
				tr["address"] = randAddr()
			default:
				tr["address"] = randAddr()
			}
			apply(num, tr)
		}
	}
	check(6)
}

func TestCanonKeyIsCanonicalJSON(t *testing.T) {
	for _, v := range []any{nil, true, false, "", "abc", "a\"b", "<&>", "tab\t", "é", "\u2028", 0.0, -0.0, 1.0, -2.5, 1e-7, 1e-6, 123456789.125, 1e20, 1e21, 5e300, 499.99,
		float64(1 << 53), map[string]any{"b": 1.0, "a": "x"}, []any{1.0, "x"}, float32(1.5), 3} {
		if got, want := canonKey(v), condition.CanonicalJSON(v); got != want {
			t.Errorf("canonKey(%#v) = %q, CanonicalJSON %q", v, got, want)
		}
	}
}

func TestIDColWidens(t *testing.T) {
	c := newIDCol(3)
	var want []uint32
	want = append(want, 0, 0, 0)
	for i := range uint32(70000) {
		id := i * 7 % 70001
		c.add(id)
		want = append(want, id)
	}
	if c.len() != len(want) || c.width != 4 {
		t.Fatalf("len %d width %d", c.len(), c.width)
	}
	buf := make([]uint32, 1000)
	for from := 0; from < len(want); from += 1000 {
		to := min(from+1000, len(want))
		got := c.decode(buf, from, to)
		for i, v := range got {
			if v != want[from+i] || c.at(from+i) != v {
				t.Fatalf("id %d: decode %d, at %d, want %d", from+i, v, c.at(from+i), want[from+i])
			}
		}
	}
}

// TestNumericRangeBuckets checks ranges over many distinct values (answered
// from bucket unions) against brute force, while values move between
// existing values (buckets updated in place) and new ones appear (buckets
// rebuilt).
func TestNumericRangeBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	x := New()
	vals := map[uint32]float64{}
	apply := func(num uint32, v float64) {
		var old map[string]any
		if ov, ok := vals[num]; ok {
			old = map[string]any{"ltv": ov}
		}
		x.Apply(&ingest.Changes{Profiles: []ingest.ProfileChange{{Num: num, NewID: "p", Old: old, New: map[string]any{"ltv": v}}}})
		vals[num] = v
	}
	for n := range uint32(30000) {
		apply(n, float64(r.IntN(1000))/4) // 1,000 values, 30 profiles each
	}
	now := time.Now()
	for round := range 8 {
		x.RLock()
		srcs := []string{`{"trait":"ltv","op":"gt","value":80}`, `{"trait":"ltv","op":"between","value":[10.25,200]}`,
			`{"trait":"ltv","op":"lte","value":123.5}`, `{"trait":"ltv","op":"lt","value":3}`, `{"trait":"ltv","op":"gte","value":0}`}
		for range 20 { // ends anywhere among the buckets, big and small
			lo := float64(r.IntN(1000)) / 4
			srcs = append(srcs, fmt.Sprintf(`{"trait":"ltv","op":"between","value":[%g,%g]}`, lo, lo+float64(r.IntN(1000))/4))
		}
		for _, src := range srcs {
			n, err := condition.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			want := roaring.New()
			for num, v := range vals {
				if n.Test.Match(v, true, now) {
					want.Add(num)
				}
			}
			if got := x.Trait(n, now); !got.Equals(want) {
				t.Fatalf("round %d, %s: index %d, brute force %d", round, src, got.GetCardinality(), want.GetCardinality())
			}
		}
		x.RUnlock()
		for range 1000 {
			num := uint32(r.IntN(30000))
			if round%3 < 2 {
				apply(num, float64(r.IntN(1000))/4) // existing values: buckets updated in place
			} else {
				apply(num, float64(r.IntN(1000000))/7) // mostly new ones: buckets rebuilt
			}
		}
	}
}

// TestInternGroupsLikeCanonicalJSON: a property column gives two values
// the same id exactly when their canonical JSON is the same.
func TestInternGroupsLikeCanonicalJSON(t *testing.T) {
	vals := []any{1.0, json.Number("1"), 1, "1", 0.0, math.Copysign(0, -1), "a", "a\"b", true, nil, map[string]any{"x": 1.0}, map[string]any{"x": json.Number("1.0")}, []any{"a"}}
	col := &propCol{ids: newIDCol(0), dict: []any{nil}, byKey: map[string]uint32{}}
	for _, a := range vals {
		for _, b := range vals {
			same := condition.CanonicalJSON(a) == condition.CanonicalJSON(b)
			if got := col.intern(a) == col.intern(b); got != same {
				t.Errorf("%#v and %#v: same id %v, same canonical JSON %v", a, b, got, same)
			}
		}
	}
}

func TestScanSplit(t *testing.T) {
	x := New()
	x.SetScanParallel(4, 1<<20, 2)
	const mb = (1 << 20) / blockSize // blocks holding 1<<20 events
	for _, c := range []struct {
		name          string
		nblocks, size int
		want          int
	}{
		{"below the event floor", mb - 1, 1000, 1},
		{"at the event floor, few profiles", mb, 1000, 4},
		{"10M profiles, 4M events: the merge would cost more", 4 * mb, 10_000_000, 1},
		{"10M profiles, 20M events", 20 * mb, 10_000_000, 4},
		{"exactly 2 events per profile", 2 * mb, 1 << 20, 4},
		{"fewer blocks than workers", 2, 1, 1}, // under the event floor
	} {
		if got := x.scanSplit(c.nblocks, c.size); got != c.want {
			t.Errorf("%s: scanSplit(%d blocks, %d profiles) = %d, want %d", c.name, c.nblocks, c.size, got, c.want)
		}
	}
	x.SetScanParallel(3, 1, 0) // as the differential tests: split every scan
	if got := x.scanSplit(2, 10_000_000); got != 2 {
		t.Errorf("minEvents 1, perProfile 0: scanSplit(2 blocks) = %d, want 2 (one per block)", got)
	}
	x.SetScanParallel(1, 1, 0)
	if got := x.scanSplit(1000, 1); got != 1 {
		t.Errorf("one worker: scanSplit = %d, want 1", got)
	}
	if got := New().scanSplit(20*mb, 10_000_000); got != min(runtime.GOMAXPROCS(0), 4) {
		t.Errorf("default at 20M events / 10M profiles: %d workers, want min(GOMAXPROCS, 4)", got)
	}
	if got := New().scanSplit(4*mb, 10_000_000); got != 1 {
		t.Errorf("default at 4M events / 10M profiles: %d workers, want 1", got)
	}
}

// TestDateRangeBuckets checks date-time tests answered from the sorted
// instants (within_last, not_within_last, comparisons and between with a
// date-time operand) against brute force, while values move, new ones
// appear, some strings are not date-times, and a date-time outside the
// int64 instant range sends the test to the general path.
func TestDateRangeBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	x := New()
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	vals := map[uint32]any{}
	apply := func(num uint32, v any) {
		var old map[string]any
		if ov, ok := vals[num]; ok {
			old = map[string]any{"signup": ov}
		}
		x.Apply(&ingest.Changes{Profiles: []ingest.ProfileChange{{Num: num, NewID: "p", Old: old, New: map[string]any{"signup": v}}}})
		vals[num] = v
	}
	date := func(spread int) any {
		switch r.IntN(40) {
		case 0:
			return "not a date"
		case 1:
			return float64(r.IntN(10))
		}
		return now.Add(-time.Duration(r.IntN(spread)) * time.Minute).Add(time.Duration(r.IntN(3)) * time.Hour).Format(time.RFC3339)
	}
	for n := range uint32(20000) {
		apply(n, date(60*24*200))
	}
	tests := []string{
		`{"trait":"signup","op":"within_last","value":"90d"}`, `{"trait":"signup","op":"not_within_last","value":"30d"}`,
		`{"trait":"signup","op":"within_last","value":"1h"}`, `{"trait":"signup","op":"gt","value":"2026-05-01T00:00:00Z"}`,
		`{"trait":"signup","op":"lte","value":"2026-03-15T08:30:00Z"}`,
		`{"trait":"signup","op":"between","value":["2026-02-01T00:00:00Z","2026-04-01T00:00:00+02:00"]}`,
	}
	for round := range 8 {
		if round == 6 {
			apply(7, "0001-01-01T00:00:00Z") // outside int64 nanoseconds: the general path answers
		}
		x.RLock()
		for _, src := range tests {
			n, err := condition.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			want := roaring.New()
			for num := range uint32(20000) {
				v, ok := vals[num]
				if n.Test.Match(v, ok, now) {
					want.Add(num)
				}
			}
			if got := x.Trait(n, now); !got.Equals(want) {
				t.Fatalf("round %d, %s: index %d, brute force %d", round, src, got.GetCardinality(), want.GetCardinality())
			}
		}
		x.RUnlock()
		for range 1000 {
			num := uint32(r.IntN(20000))
			if round%3 < 2 {
				apply(num, vals[uint32(r.IntN(20000))]) // an existing value: buckets updated in place
			} else {
				apply(num, date(60*24*400)) // mostly new ones: rebuilt
			}
		}
	}
}

// TestCanonKeyMatchesCanonicalJSON: the index's fast canonical keys are
// condition.CanonicalJSON's, byte for byte, for random nested values
// (objects, arrays, numbers of every size, strings needing escapes).
func TestCanonKeyMatchesCanonicalJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	strs := []string{"", "a", "Electronics", "a\"b", "x<y", "é", "tab\t", "k.v", "&"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.IntN(8); {
		case k == 0:
			return nil
		case k == 1:
			return r.IntN(2) == 0
		case k == 2:
			return strs[r.IntN(len(strs))]
		case k == 3:
			return []float64{0, math.Copysign(0, -1), 1.5, -3, 1e-7, 1e21, 123456789.25, 1e300}[r.IntN(8)]
		case k == 4:
			return json.Number("2.50")
		case depth < 3 && k < 6:
			m := map[string]any{}
			for range r.IntN(4) {
				m[strs[r.IntN(len(strs))]] = gen(depth + 1)
			}
			return m
		case depth < 3:
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		}
		return float64(r.IntN(100))
	}
	for range 20000 {
		v := gen(0)
		if got, want := canonKey(v), condition.CanonicalJSON(v); got != want {
			t.Fatalf("%#v: canonKey %s, CanonicalJSON %s", v, got, want)
		}
	}
}

// TestTraitExists: exists and not_exists on a top-level trait (answered
// from the key's profiles less those whose value is null) agree with
// condition.Match on each live profile's value: true, false, null, an
// object, an array, absent; after profiles are deleted or merged away.
func TestTraitExists(t *testing.T) {
	x := New()
	vals := []any{true, false, nil, map[string]any{"a": 1.0}, []any{}, "x", 0.0}
	want := map[uint32]any{}
	c := &ingest.Changes{}
	for n := range uint32(40) {
		traits := map[string]any{"plan": "free"}
		if n%8 != 7 { // every eighth lacks the key
			traits["vip"] = vals[int(n)%len(vals)]
			want[n] = traits["vip"]
		}
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprint("u", n), New: traits})
	}
	x.Apply(c)
	gone := &ingest.Changes{Deleted: []uint32{2}, Merges: []ingest.Merge{{Src: 9, Dst: 10}}}
	for _, n := range []uint32{2, 9} {
		gone.Profiles = append(gone.Profiles, ingest.ProfileChange{Num: n, OldID: fmt.Sprint("u", n), Old: map[string]any{"plan": "free", "vip": want[n]}})
		delete(want, n)
	}
	x.Apply(gone)
	now := time.Now()
	for _, op := range []condition.Op{condition.OpExists, condition.OpNotExists} {
		test := &condition.Test{Op: op}
		got := x.Trait(&condition.Node{Kind: condition.Trait, Name: "vip", Test: test}, now)
		exp := roaring.New()
		for _, n := range x.all.ToArray() {
			v, ok := want[n]
			if test.Match(v, ok, now) {
				exp.Add(n)
			}
		}
		if !got.Equals(exp) {
			t.Errorf("%s: got %v, want %v", op, got.ToArray(), exp.ToArray())
		}
	}
}
