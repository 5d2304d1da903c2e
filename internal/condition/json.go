package condition

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// maxJSONDepth bounds the nesting of the raw JSON document (objects and
// arrays). It is well above what MaxDepth condition levels need, so that
// the condition-level limit is the one users meet.
const maxJSONDepth = 1000

// object is a JSON object that remembers its key order, so that problems
// are reported in document order and duplicate keys can be refused.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(key string) (any, bool) {
	v, ok := o.vals[key]
	return v, ok
}

// decodeJSON reads one JSON value into string, bool, nil, json.Number,
// []any and *object values. Syntax errors, duplicate keys, excessive
// nesting and trailing data are reported as *Error.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	r := reader{dec: dec}
	v, err := r.value("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errf("", "unexpected data after the condition")
	}
	return v, nil
}

type reader struct {
	dec *json.Decoder
}

func (r *reader) value(path string, depth int) (any, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, syntaxError(path, err, depth == 0)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, bool, nil or json.Number
	}
	if depth >= maxJSONDepth {
		return nil, errf(path, "JSON nested more than %d levels deep", maxJSONDepth)
	}
	switch d {
	case '{':
		obj := &object{vals: map[string]any{}}
		for r.dec.More() {
			kt, err := r.dec.Token()
			if err != nil {
				return nil, syntaxError(path, err, false)
			}
			key, ok := kt.(string)
			if !ok { // cannot happen with a valid decoder; never panic
				return nil, errf(path, "invalid JSON: object key is not a string")
			}
			kp := pointer(path, key)
			if _, dup := obj.vals[key]; dup {
				return nil, errf(kp, "duplicate key %q", key)
			}
			v, err := r.value(kp, depth+1)
			if err != nil {
				return nil, err
			}
			obj.keys = append(obj.keys, key)
			obj.vals[key] = v
		}
		if _, err := r.dec.Token(); err != nil { // '}'
			return nil, syntaxError(path, err, false)
		}
		return obj, nil
	case '[':
		arr := []any{}
		for i := 0; r.dec.More(); i++ {
			v, err := r.value(index(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := r.dec.Token(); err != nil { // ']'
			return nil, syntaxError(path, err, false)
		}
		return arr, nil
	}
	return nil, errf(path, "invalid JSON: unexpected %q", string(d))
}

func syntaxError(path string, err error, atStart bool) error {
	// The decoder's SyntaxError offsets are relative to its internal
	// buffer when reading token by token, so only the path locates errors.
	switch {
	case atStart && err == io.EOF:
		return errf(path, "empty condition: expected a JSON object")
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return errf(path, "invalid JSON: unexpected end of input")
	}
	return errf(path, "invalid JSON: %v", err)
}

// plain converts a decoded value to the form encoding/json produces with
// default settings: float64 numbers and map[string]any objects.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case *object:
		m := make(map[string]any, len(x.keys))
		for _, k := range x.keys {
			m[k] = plain(x.vals[k])
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// pointer appends one reference token to an RFC 6901 JSON pointer.
func pointer(base, token string) string {
	if strings.ContainsAny(token, "~/") {
		token = strings.ReplaceAll(token, "~", "~0")
		token = strings.ReplaceAll(token, "/", "~1")
	}
	return base + "/" + token
}

// index appends an array index to a JSON pointer.
func index(base string, i int) string {
	return base + "/" + strconv.Itoa(i)
}
