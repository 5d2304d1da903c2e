package idmap

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestMapIsGoMap runs random operations on a Map and a Go map side by
// side: sets of new and known ids, deletes (enough to compact the arena
// and to fill the table with tombstones), sets of deleted ids, and
// compares every answer and, now and then, the whole contents.
func TestMapIsGoMap(t *testing.T) {
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 7))
		m, want := New(), map[string]uint32{}
		ids := make([]string, 0, 1<<16)
		idOf := func() string {
			if len(ids) > 0 && r.IntN(3) > 0 {
				return ids[r.IntN(len(ids))]
			}
			// Short, long, empty and byte-wise odd ids.
			var id string
			switch r.IntN(6) {
			case 0:
				id = ""
			case 1:
				id = fmt.Sprintf("%0*d", 100+r.IntN(300), r.IntN(1000))
			case 2:
				id = string([]byte{byte(r.IntN(256)), 0, byte(r.IntN(256))})
			default:
				id = fmt.Sprintf("user-%d", r.IntN(1<<20))
			}
			ids = append(ids, id)
			return id
		}
		deletes := 0.1 + 0.5*float64(seed%3) // some seeds delete half of what they do
		for op := range 200_000 {
			id := idOf()
			switch {
			case r.Float64() < deletes:
				m.Delete(id)
				delete(want, id)
			case r.IntN(2) == 0:
				n := r.Uint32()
				m.Set(id, n)
				want[id] = n
			default: // Load when the id is new: between tombstones too
				if _, held := want[id]; held {
					continue
				}
				b := []byte(id)
				n := r.Uint32()
				m.Load(b, n)
				for i := range b {
					b[i] = 'x' // the map copied the bytes
				}
				want[id] = n
			}
			got, ok := m.Get(id)
			if w, wok := want[id]; ok != wok || got != w {
				t.Fatalf("seed %d op %d: Get(%q) = %d, %v; want %d, %v", seed, op, id, got, ok, w, wok)
			}
			if m.Len() != len(want) {
				t.Fatalf("seed %d op %d: Len %d, want %d", seed, op, m.Len(), len(want))
			}
			if op%20_000 == 0 {
				same(t, m, want)
			}
		}
		same(t, m, want)
	}
}

func same(t *testing.T, m *Map, want map[string]uint32) {
	t.Helper()
	seen := 0 // every id the table holds, read from its slots
	for i, s := range m.slots {
		if s == 0 || s == tombstone {
			continue
		}
		seen++
		if id, _ := m.entry(s); want[id] != m.vals[i] {
			t.Fatalf("slot %d: %q → %d, want %d", i, id, m.vals[i], want[id])
		}
	}
	if seen != len(want) {
		t.Fatalf("the table holds %d ids, want %d", seen, len(want))
	}
	for id, w := range want {
		if got, ok := m.Get(id); !ok || got != w {
			t.Fatalf("Get(%q) = %d, %v; want %d", id, got, ok, w)
		}
	}
}

// TestDeletesReclaimArena checks that deleting most ids gives their
// bytes back: the arena is rebuilt without them.
func TestDeletesReclaimArena(t *testing.T) {
	m := New()
	const n = 200_000
	for i := range n {
		m.Set(fmt.Sprintf("user-%d-%s", i, "padding-to-make-the-arena-large"), uint32(i))
	}
	full := len(m.arena)
	for i := range n - 1000 {
		m.Delete(fmt.Sprintf("user-%d-%s", i, "padding-to-make-the-arena-large"))
	}
	if len(m.arena) > full/2 {
		t.Fatalf("arena %d bytes after deleting all but 1,000 of %d ids (%d full)", len(m.arena), n, full)
	}
	for i := n - 1000; i < n; i++ {
		if got, ok := m.Get(fmt.Sprintf("user-%d-%s", i, "padding-to-make-the-arena-large")); !ok || got != uint32(i) {
			t.Fatalf("id %d: %d, %v", i, got, ok)
		}
	}
}

// BenchmarkMemory loads 1M ids shaped like the generator's (user-N and
// anon-N) and reports the bytes each takes, against a Go map.
func BenchmarkMemory(b *testing.B) {
	const n = 1_000_000
	id := func(i int) string {
		if i%5 == 0 {
			return fmt.Sprintf("anon-%d", i)
		}
		return fmt.Sprintf("user-%d", i)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	b.Run("idmap", func(b *testing.B) {
		for range b.N {
			before := heap()
			m := New()
			for i := range n {
				m.Set(id(i), uint32(i))
			}
			b.ReportMetric(float64(heap()-before)/n, "B/id")
			runtime.KeepAlive(m)
		}
	})
	b.Run("gomap", func(b *testing.B) {
		for range b.N {
			before := heap()
			m := map[string]uint32{}
			for i := range n {
				m[id(i)] = uint32(i)
			}
			b.ReportMetric(float64(heap()-before)/n, "B/id")
			runtime.KeepAlive(m)
		}
	})
}

// TestLoadSized checks Load (ids known to be new, no lookup first) into a
// map sized ahead: the same answers as a Go map, and no growth while the
// ids fit the size given.
func TestLoadSized(t *testing.T) {
	const n = 50_000
	loaded := NewSized(n)
	slots := len(loaded.slots)
	want := map[string]uint32{}
	for i := range n {
		id := fmt.Sprintf("anon-%x-%d", i*7919, i)
		loaded.Load([]byte(id), uint32(i))
		want[id] = uint32(i)
	}
	if len(loaded.slots) != slots {
		t.Fatalf("sized for %d ids, the table grew from %d to %d slots", n, slots, len(loaded.slots))
	}
	same(t, loaded, want)
	loaded.Set("anon-0-0", 99) // Set after Load finds the loaded id
	if v, _ := loaded.Get("anon-0-0"); v != 99 || loaded.Len() != n {
		t.Fatalf("Set over a loaded id: %d, Len %d", v, loaded.Len())
	}
}
