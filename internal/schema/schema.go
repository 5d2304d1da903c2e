// Package schema owns a workspace's schema registry: every trait and every
// event seen, with the value types observed for each trait and event
// property and how often each type was seen.
//
// Type conflicts are recorded, never refused: a trait sent as a number and
// later as a string shows both types with their counts, and both values
// stay stored and queryable. The registry is in memory and written to the
// store as dirty entries with each ingest commit.
package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cohortdb/cohort/internal/model"
)

// maxDepth bounds how deep nested property objects are described (as
// dotted paths).
const maxDepth = 3

// Types counts observations per value type.
type Types map[model.ValueType]int64

// Event describes one event name.
type Event struct {
	Count      int64            `json:"count"`
	Properties map[string]Types `json:"properties"`
}

// Registry is one workspace's schema. It is safe for concurrent use.
type Registry struct {
	mu          sync.Mutex
	traits      map[string]Types
	events      map[string]*Event
	dirtyTraits map[string]struct{}
	dirtyEvents map[string]struct{}
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{
		traits:      map[string]Types{},
		events:      map[string]*Event{},
		dirtyTraits: map[string]struct{}{},
		dirtyEvents: map[string]struct{}{},
	}
}

// ObserveTraits records the types of the traits set by one message.
func (r *Registry) ObserveTraits(traits map[string]any) {
	if len(traits) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range traits {
		t := r.traits[k]
		if t == nil {
			t = Types{}
			r.traits[k] = t
		}
		t[model.TypeOf(v)]++
		r.dirtyTraits[k] = struct{}{}
	}
}

// ObserveEvent records one event and the types of its properties.
func (r *Registry) ObserveEvent(name string, props map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events[name]
	if e == nil {
		e = &Event{Properties: map[string]Types{}}
		r.events[name] = e
	}
	e.Count++
	observeProps(e.Properties, "", props, 1)
	r.dirtyEvents[name] = struct{}{}
}

func observeProps(into map[string]Types, prefix string, props map[string]any, depth int) {
	for k, v := range props {
		path := prefix + k
		t := into[path]
		if t == nil {
			t = Types{}
			into[path] = t
		}
		t[model.TypeOf(v)]++
		if sub, ok := v.(map[string]any); ok && depth < maxDepth {
			observeProps(into, path+".", sub, depth+1)
		}
	}
}

// Flush hands every entry changed since the last Flush to put, encoded,
// and marks them clean. kind is 't' for traits and 'e' for events.
func (r *Registry) Flush(put func(kind byte, name string, val []byte) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.dirtyTraits {
		v, err := json.Marshal(r.traits[k])
		if err != nil {
			return fmt.Errorf("encode trait %q schema: %w", k, err)
		}
		if err := put('t', k, v); err != nil {
			return err
		}
	}
	for k := range r.dirtyEvents {
		v, err := json.Marshal(r.events[k])
		if err != nil {
			return fmt.Errorf("encode event %q schema: %w", k, err)
		}
		if err := put('e', k, v); err != nil {
			return err
		}
	}
	clear(r.dirtyTraits)
	clear(r.dirtyEvents)
	return nil
}

// Load restores one stored entry.
func (r *Registry) Load(kind byte, name string, val []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case 't':
		var t Types
		if err := json.Unmarshal(val, &t); err != nil {
			return fmt.Errorf("trait %q schema: %w", name, err)
		}
		r.traits[name] = t
	case 'e':
		var e Event
		if err := json.Unmarshal(val, &e); err != nil {
			return fmt.Errorf("event %q schema: %w", name, err)
		}
		if e.Properties == nil {
			e.Properties = map[string]Types{}
		}
		r.events[name] = &e
	default:
		return fmt.Errorf("schema entry %q of unknown kind %q", name, kind)
	}
	return nil
}

// Field is one trait or property in a Snapshot.
type Field struct {
	Name  string `json:"name"`
	Types Types  `json:"types"`
	Count int64  `json:"count"`
}

// EventInfo is one event in a Snapshot.
type EventInfo struct {
	Name       string  `json:"name"`
	Count      int64   `json:"count"`
	Properties []Field `json:"properties"`
}

// Snapshot is the registry as the API shows it, sorted by name.
type Snapshot struct {
	Traits []Field     `json:"traits"`
	Events []EventInfo `json:"events"`
}

// Snapshot copies the registry.
func (r *Registry) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Traits: fields(r.traits), Events: []EventInfo{}}
	for _, name := range slices.Sorted(maps.Keys(r.events)) {
		e := r.events[name]
		s.Events = append(s.Events, EventInfo{Name: name, Count: e.Count, Properties: fields(e.Properties)})
	}
	return s
}

func fields(m map[string]Types) []Field {
	out := []Field{}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		f := Field{Name: name, Types: maps.Clone(m[name])}
		for _, c := range f.Types {
			f.Count += c
		}
		out = append(out, f)
	}
	return out
}

// HasTrait reports whether a trait has been seen.
func (r *Registry) HasTrait(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.traits[name]
	return ok
}

// HasEvent reports whether an event name has been seen.
func (r *Registry) HasEvent(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.events[name]
	return ok
}
