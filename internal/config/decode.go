package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decodeYAML decodes src over c, reporting every problem at once in the
// file's own words: the dotted key path, the line, and what was wanted
// ("limits.burst: want a whole number, got \"lots\""). Values that decode
// are kept even when others do not, so Validate can check them too.
func decodeYAML(src []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return err // a syntax error: nothing further can be trusted
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // an empty file: the defaults
	}
	d := &decoder{}
	d.value("", doc.Content[0], reflect.ValueOf(c).Elem())
	return errors.Join(d.errs...)
}

type decoder struct{ errs []error }

func (d *decoder) bad(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	if n != nil && n.Line > 0 {
		msg = fmt.Sprintf("line %d: %s", n.Line, msg)
	}
	d.errs = append(d.errs, errors.New(msg))
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// value decodes n into v, whose key path is path.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		d.bad(n, path, "no value given; remove the key to keep the default")
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.bad(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(path, n, v)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(path, n, v.Elem())
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.bad(n, path, "want a list, got %s", describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i))
		}
		v.Set(out)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.bad(n, path, "want a mapping of names to values, got %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(join(path, k.Value), val, elem)
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
	default:
		d.scalar(path, n, v)
	}
}

// mapping decodes a YAML mapping into a struct by its yaml tags.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.bad(n, path, "want a mapping of keys to values, got %s", describe(n))
		return
	}
	fields := map[string]int{}
	var names []string
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !v.Type().Field(i).IsExported() {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			if s := suggest(k.Value, names); s != "" {
				d.bad(k, p, "unknown key; did you mean %s?", s)
			} else {
				d.bad(k, p, "unknown key (docs/config.md lists the keys)")
			}
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.bad(k, p, "given twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		d.value(p, val, v.Field(f))
	}
}

// scalar decodes a string, number or boolean.
func (d *decoder) scalar(path string, n *yaml.Node, v reflect.Value) {
	want := map[reflect.Kind]string{
		reflect.String: "text", reflect.Bool: "true or false",
		reflect.Float32: "a number", reflect.Float64: "a number",
	}[v.Kind()]
	if want == "" {
		want = "a whole number"
	}
	if n.Kind != yaml.ScalarNode {
		d.bad(n, path, "want %s, got %s", want, describe(n))
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		if tag == "!!str" || tag == "!!int" || tag == "!!float" {
			v.SetString(n.Value)
			return
		}
	case reflect.Bool:
		if tag == "!!bool" {
			b, err := strconv.ParseBool(n.Value)
			if err == nil {
				v.SetBool(b)
				return
			}
		}
	case reflect.Float32, reflect.Float64:
		if tag == "!!int" || tag == "!!float" {
			var f float64
			if err := n.Decode(&f); err == nil {
				v.SetFloat(f)
				return
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag == "!!int" {
			var i int64
			if err := n.Decode(&i); err == nil && !v.OverflowInt(i) {
				v.SetInt(i)
				return
			}
			d.bad(n, path, "%s is out of range", n.Value)
			return
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag == "!!int" {
			var u uint64
			if err := n.Decode(&u); err == nil && !v.OverflowUint(u) {
				v.SetUint(u)
				return
			}
			d.bad(n, path, "%s is out of range (want a whole number from 0)", n.Value)
			return
		}
	default:
		d.bad(n, path, "cannot be set from a configuration file")
		return
	}
	d.bad(n, path, "want %s, got %s", want, describe(n))
}

// describe names a node's value as the file wrote it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns the known name closest to an unknown key, when it is
// close enough to be a likely typo (at most a third of its letters off).
func suggest(key string, names []string) string {
	best, bestD := "", len(key)/3+1
	for _, n := range names {
		if dist := editDistance(key, n); dist < bestD {
			best, bestD = n, dist
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
