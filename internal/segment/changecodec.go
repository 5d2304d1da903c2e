package segment

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Change records are JSON (storedChange as encoding/json writes it).
// Every change is encoded once in the applier and decoded again for
// every stream and sink that reads it; reflection made both a visible
// part of the applier's and the stream's time. These do the same without
// it, byte for byte, and defer to encoding/json for anything out of the
// ordinary (strings that need escaping, other field orders).

// plainJSON reports whether s is written by encoding/json as itself
// between quotes: printable ASCII without '"', '\\', '<', '>' and '&'.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// encodeChange encodes c as json.Marshal does (a change with an origin,
// from a source, takes encoding/json's path).
func encodeChange(c *storedChange) ([]byte, error) {
	y := c.At.Year()
	if !plainJSON(c.Segment) || !plainJSON(c.User) || !plainJSON(c.Change.Change) || !plainJSON(c.Reason) || c.Origin != "" || y < 0 || y > 9999 {
		return json.Marshal(c)
	}
	b := make([]byte, 0, 96+len(c.Segment)+len(c.User))
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"segment":"`...)
	b = append(b, c.Segment...)
	b = append(b, `","user":"`...)
	b = append(b, c.User...)
	b = append(b, `","change":"`...)
	b = append(b, c.Change.Change...)
	b = append(b, `","at":"`...)
	b = c.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","reason":"`...)
	b = append(b, c.Reason...)
	b = append(b, `","n":`...)
	b = strconv.AppendUint(b, uint64(c.Num), 10)
	return append(b, '}'), nil
}

// decodeChangeFast decodes what encodeChange writes without escapes; ok
// is false for anything else.
func decodeChangeFast(b []byte) (c storedChange, ok bool) {
	if bytes.IndexByte(b, '\\') >= 0 {
		return c, false
	}
	rest := b
	num := func(key string) (uint64, bool) {
		if !bytes.HasPrefix(rest, []byte(key)) {
			return 0, false
		}
		rest = rest[len(key):]
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		n, err := strconv.ParseUint(string(rest[:i]), 10, 64)
		rest = rest[i:]
		return n, err == nil
	}
	str := func(key string) (string, bool) {
		if !bytes.HasPrefix(rest, []byte(key)) {
			return "", false
		}
		rest = rest[len(key):]
		i := bytes.IndexByte(rest, '"')
		if i < 0 {
			return "", false
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, true
	}
	var at string
	var n uint64
	var ok1, ok2, ok3, ok4, ok5, ok6, ok7 bool
	c.Seq, ok1 = num(`{"seq":`)
	c.Segment, ok2 = str(`,"segment":"`)
	c.User, ok3 = str(`,"user":"`)
	c.Change.Change, ok4 = str(`,"change":"`)
	at, ok5 = str(`,"at":"`)
	c.Reason, ok6 = str(`,"reason":"`)
	n, ok7 = num(`,"n":`)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || string(rest) != "}" || n > 1<<32-1 {
		return storedChange{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return storedChange{}, false
	}
	c.At, c.Num = t, uint32(n)
	return c, true
}
