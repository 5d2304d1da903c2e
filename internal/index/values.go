package index

import (
	"container/heap"
	"strings"
)

// ValueCount is one value and how often it occurs.
type ValueCount struct {
	Value any   `json:"value"`
	Count int64 `json:"count"`
}

// TopTraitValues returns a trait's most frequent values with the number
// of profiles holding each now, most frequent first (ties by canonical
// JSON). It reads the value bitmaps the index keeps anyway: no profile is
// decoded. A dotted name reads the values at that path inside objects.
func (x *Index) TopTraitValues(name string, limit int) []ValueCount {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t := x.traits[name]
	if t == nil {
		if head, rest, ok := strings.Cut(name, "."); ok && x.traits[head] != nil {
			t = x.traits[head].sub(rest)
		}
	}
	top := newTopK(limit)
	if t != nil {
		for key, e := range t.vals {
			if top.wants(e.n) {
				top.offer(key, e, e.n)
			}
		}
	}
	return top.sorted()
}

// TopEventValues returns the most frequent values of an event property
// (a dotted path into nested objects), counting the events retained, most
// frequent first. Counts are kept as events arrive (propCol.counts), so
// the answer costs one pass over the distinct values.
func (x *Index) TopEventValues(event, path string, limit int) []ValueCount {
	x.mu.RLock()
	defer x.mu.RUnlock()
	top := newTopK(limit)
	if c := x.events[event]; c != nil {
		if col := c.props[path]; col != nil {
			for id := 1; id < len(col.counts); id++ {
				if n := int64(col.counts[id]); n > 0 && top.wants(n) {
					v := col.dict[id]
					top.offer(canonKey(v), v, n)
				}
			}
		}
	}
	return top.sorted()
}

// topK keeps the k largest counts seen (a min-heap on count, then on the
// reverse of the key, so that ties keep the smaller keys).
type topK struct {
	k     int
	items []topItem
}

type topItem struct {
	key   string
	v     any
	count int64
}

func newTopK(k int) *topK { return &topK{k: k} }

func (t *topK) Len() int { return len(t.items) }
func (t *topK) Less(i, j int) bool {
	a, b := t.items[i], t.items[j]
	if a.count != b.count {
		return a.count < b.count
	}
	return a.key > b.key
}
func (t *topK) Swap(i, j int) { t.items[i], t.items[j] = t.items[j], t.items[i] }
func (t *topK) Push(v any)    { t.items = append(t.items, v.(topItem)) }
func (t *topK) Pop() any {
	v := t.items[len(t.items)-1]
	t.items = t.items[:len(t.items)-1]
	return v
}

// wants reports whether a value with this count could enter the top (its
// key is needed only then).
func (t *topK) wants(count int64) bool {
	return len(t.items) < t.k || (t.k > 0 && count >= t.items[0].count)
}

func (t *topK) offer(key string, v any, count int64) {
	it := topItem{key, v, count}
	if len(t.items) < t.k {
		heap.Push(t, it)
		return
	}
	if t.k == 0 {
		return
	}
	worst := t.items[0]
	if count > worst.count || (count == worst.count && key < worst.key) {
		t.items[0] = it
		heap.Fix(t, 0)
	}
}

func (t *topK) sorted() []ValueCount {
	out := make([]ValueCount, len(t.items))
	for i := len(out) - 1; i >= 0; i-- {
		it := heap.Pop(t).(topItem)
		v := it.v
		if e, ok := v.(*valEntry); ok {
			v = e.value() // decoded for the few values that made the top
		}
		out[i] = ValueCount{Value: v, Count: it.count}
	}
	return out
}
