package index

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestIDArena: the arena answers like a map through sets, changes and
// removals, strings handed out stay intact across compactions, and the
// garbage is reclaimed.
func TestIDArena(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a idArena
	want := map[uint32]string{}
	held := map[string]string{} // strings handed out earlier → their value then
	for i := range 200_000 {
		n := uint32(r.IntN(5000))
		switch r.IntN(4) {
		case 0:
			a.del(n)
			delete(want, n)
		default:
			id := fmt.Sprintf("user-%d-%d", n, i%7)
			if r.IntN(50) == 0 {
				id = ""
			}
			a.set(n, id)
			want[n] = id
		}
		if i%1000 == 0 {
			if s, ok := a.get(n); ok {
				held[fmt.Sprint(i)] = s
				held[fmt.Sprint(i)+"copy"] = string([]byte(s))
			}
		}
	}
	for n := range uint32(5000) {
		got, ok := a.get(n)
		w, wok := want[n]
		if ok != wok || got != w {
			t.Fatalf("profile %d: arena %q %v, want %q %v", n, got, ok, w, wok)
		}
	}
	runtime.GC()
	for k, s := range held {
		if c, isCopy := held[k+"copy"]; isCopy && c != s {
			t.Fatalf("a string handed out changed after compaction: %q, was %q", s, c)
		}
	}
	live := 0
	for _, s := range want {
		live += len(s)
	}
	if len(a.buf) > 2*live+1<<16+64 {
		t.Errorf("arena holds %d bytes for %d live: garbage not reclaimed", len(a.buf), live)
	}
}

// TestValEntry: an entry answers like a set through additions and
// removals, moving between one profile and a bitmap.
func TestValEntry(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	e := newValEntry("x")
	want := map[uint32]bool{}
	for range 20000 {
		n := uint32(r.IntN(6))
		if r.IntN(2) == 0 {
			if got := e.add(n); got == want[n] {
				t.Fatalf("add(%d) = %v with %v", n, got, want)
			}
			want[n] = true
		} else {
			if got := e.remove(n); got != want[n] {
				t.Fatalf("remove(%d) = %v with %v", n, got, want)
			}
			delete(want, n)
		}
		if int(e.n) != len(want) || (e.bm != nil && e.n < 2) || int(e.bitmap().GetCardinality()) != len(want) {
			t.Fatalf("n %d, bitmap %v, want %v", e.n, e.bitmap(), want)
		}
		for k := range uint32(6) {
			if e.contains(k) != want[k] {
				t.Fatalf("contains(%d) = %v with %v", k, e.contains(k), want)
			}
		}
	}
}
