package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestConfigDocComplete: docs/config.md's example file lists every key the
// server accepts, and no key it does not.
func TestConfigDocComplete(t *testing.T) {
	raw, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("docs/config.md has no ```yaml block")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("docs/config.md's yaml block: %v", err)
	}
	documented := map[string]bool{}
	nodeKeys(doc.Content[0], "", documented)

	accepted := map[string]bool{}
	structKeys(reflect.TypeFor[Config](), "", accepted)

	for k := range accepted {
		if !documented[k] {
			t.Errorf("key %s is accepted but not in docs/config.md", k)
		}
	}
	for k := range documented {
		if !accepted[k] {
			t.Errorf("docs/config.md lists %s, which the server does not accept", k)
		}
	}
	if len(accepted) < 15 {
		t.Errorf("only %d keys found by reflection: %v", len(accepted), slices.Sorted(func(yield func(string) bool) {
			for k := range accepted {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

// nodeKeys adds the dotted keys of a YAML mapping (list items share their
// list's prefix).
func nodeKeys(n *yaml.Node, prefix string, into map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			into[k] = true
			nodeKeys(n.Content[i+1], k+".", into)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			nodeKeys(c, prefix, into)
		}
	}
}

// structKeys adds the dotted yaml keys of a struct type (slice elements
// share their slice's prefix; inline fields their parent's).
func structKeys(t reflect.Type, prefix string, into map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			structKeys(f.Type, prefix, into)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		k := prefix + name
		into[k] = true
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() && !ft.Implements(reflect.TypeFor[yaml.Unmarshaler]()) && !reflect.PointerTo(ft).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
			structKeys(ft, k+".", into)
		}
	}
}
