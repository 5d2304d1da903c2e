package message

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects, as encoding/json does,
// so that a hostile body cannot grow the stack without limit.
const maxDepth = 10000

// kind is the JSON type of a value as first seen in the input.
type kind uint8

const (
	kindMissing kind = iota // the key is absent
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// String names the kind with its article, for use in error sentences
// ("must be an object, not an array").
func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	}
	return "missing"
}

// absent reports whether a field of this kind counts as not sent. A JSON
// null is treated like a missing key, as SDKs that serialise empty optional
// fields as null expect.
func (k kind) absent() bool { return k == kindMissing || k == kindNull }

// syntaxError is a position-annotated JSON syntax error.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%s at offset %d", e.msg, e.off)
}

// parser is a small recursive-descent JSON parser over a byte slice. It
// builds the same values encoding/json builds when unmarshalling into an
// any (map[string]any, []any, string, float64, bool, nil) without
// reflection, and can skip values it does not need while still checking
// their syntax.
//
// Syntax errors are returned; semantic problems that do not make the input
// malformed (a number outside the float64 range) are recorded in sem and
// parsing continues, so that they can reject one message of a batch only.
type parser struct {
	b     []byte
	i     int
	depth int
	sem   error
	buf   []byte // scratch space for unescaping strings
	// cache interns object keys and event names (see intern).
	cache [internSize]string
	// strs and nums cache boxed string and number values: property values
	// such as currencies, plans and small counts repeat across a batch,
	// and a boxed value is immutable, so messages can share it.
	strs [64]any
	nums [32]any
}

// ws skips JSON whitespace.
func (p *parser) ws() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func (p *parser) eof() error {
	return &syntaxError{msg: "unexpected end of JSON input", off: len(p.b)}
}

// unexpected reports the byte at p.i (or the end of input) as invalid in
// the given context ("looking for beginning of value").
func (p *parser) unexpected(context string) error {
	if p.i >= len(p.b) {
		return p.eof()
	}
	return &syntaxError{msg: "invalid character " + quoteChar(p.b[p.i]) + " " + context, off: p.i}
}

func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	if c >= utf8.RuneSelf {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (p *parser) push() error {
	p.depth++
	if p.depth > maxDepth {
		return &syntaxError{msg: fmt.Sprintf("nesting deeper than %d levels", maxDepth), off: p.i}
	}
	return nil
}

// peek returns the kind of the value starting at p.i, or kindMissing when
// the byte cannot start a value.
func (p *parser) peek() kind {
	if p.i >= len(p.b) {
		return kindMissing
	}
	switch c := p.b[p.i]; c {
	case '{':
		return kindObject
	case '[':
		return kindArray
	case '"':
		return kindString
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return kindNumber
		}
	}
	return kindMissing
}

// value parses the value at p.i (no leading whitespace) into an any.
func (p *parser) value() (any, error) {
	switch p.peek() {
	case kindObject:
		m, err := p.object()
		if err != nil {
			return nil, err
		}
		return m, nil
	case kindArray:
		a, err := p.array()
		if err != nil {
			return nil, err
		}
		return a, nil
	case kindString:
		b, err := p.strBytes()
		if err != nil {
			return nil, err
		}
		return p.boxString(b), nil
	case kindNumber:
		return p.number()
	case kindBool:
		if p.b[p.i] == 't' {
			return true, p.literal("true")
		}
		return false, p.literal("false")
	case kindNull:
		return nil, p.literal("null")
	}
	return nil, p.unexpected("looking for beginning of value")
}

// skip checks the syntax of the value at p.i and moves past it.
func (p *parser) skip() error {
	switch p.peek() {
	case kindObject:
		if err := p.push(); err != nil {
			return err
		}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			p.depth--
			return nil
		}
		for {
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return p.unexpected("looking for beginning of object key string")
			}
			if err := p.skipString(); err != nil {
				return err
			}
			if err := p.colon(); err != nil {
				return err
			}
			if err := p.skip(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.b) {
				return p.eof()
			}
			switch p.b[p.i] {
			case ',':
				p.i++
				p.ws()
			case '}':
				p.i++
				p.depth--
				return nil
			default:
				return p.unexpected("after object key:value pair")
			}
		}
	case kindArray:
		if err := p.push(); err != nil {
			return err
		}
		p.i++
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			p.depth--
			return nil
		}
		for {
			if err := p.skip(); err != nil {
				return err
			}
			p.ws()
			if p.i >= len(p.b) {
				return p.eof()
			}
			switch p.b[p.i] {
			case ',':
				p.i++
				p.ws()
			case ']':
				p.i++
				p.depth--
				return nil
			default:
				return p.unexpected("after array element")
			}
		}
	case kindString:
		return p.skipString()
	case kindNumber:
		_, _, err := p.scanNumber()
		return err
	case kindBool:
		if p.b[p.i] == 't' {
			return p.literal("true")
		}
		return p.literal("false")
	case kindNull:
		return p.literal("null")
	}
	return p.unexpected("looking for beginning of value")
}

// colon consumes optional whitespace, the ':' after an object key, and the
// whitespace after it.
func (p *parser) colon() error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return p.unexpected("after object key")
	}
	p.i++
	p.ws()
	return nil
}

func (p *parser) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if p.i >= len(p.b) {
			return p.eof()
		}
		if p.b[p.i] != word[j] {
			return p.unexpected("in literal " + word + " (expecting " + quoteChar(word[j]) + ")")
		}
		p.i++
	}
	return nil
}

// object parses the object at p.i into a map.
func (p *parser) object() (map[string]any, error) {
	if err := p.push(); err != nil {
		return nil, err
	}
	p.i++
	m := make(map[string]any)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return m, nil
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.unexpected("looking for beginning of object key string")
		}
		kb, err := p.strBytes()
		if err != nil {
			return nil, err
		}
		k := p.intern(kb)
		if err := p.colon(); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.eof()
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			p.depth--
			return m, nil
		default:
			return nil, p.unexpected("after object key:value pair")
		}
	}
}

// array parses the array at p.i.
func (p *parser) array() ([]any, error) {
	if err := p.push(); err != nil {
		return nil, err
	}
	p.i++
	a := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.eof()
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			p.ws()
		case ']':
			p.i++
			p.depth--
			return a, nil
		default:
			return nil, p.unexpected("after array element")
		}
	}
}

// internSize is the number of slots of the interning cache, a power of 2.
const internSize = 128

// intern returns b as a string, sharing one copy between equal strings of
// the same request: a batch repeats the same property and trait names in
// every message. The cache is direct-mapped on a cheap hash of the length
// and the edge bytes; a collision only costs an allocation.
func (p *parser) intern(b []byte) string {
	n := len(b)
	if n == 0 || n > 64 {
		return string(b)
	}
	h := uint(n)*131 + uint(b[0])*31 + uint(b[n-1])*7 + uint(b[n/2])
	slot := &p.cache[h%internSize]
	if *slot == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

// strBytes parses the string at p.i and returns its decoded contents. The
// result aliases the input or the parser's scratch buffer: it is only valid
// until the next call.
func (p *parser) strBytes() ([]byte, error) {
	start := p.i + 1
	ascii := true
	b := p.b
	i := start
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return nil, p.eof()
		}
		switch c := b[i]; {
		case c == '"':
			s := b[start:i]
			if !ascii && !utf8.Valid(s) {
				return p.slowString(start)
			}
			p.i = i + 1
			return s, nil
		case c == '\\':
			return p.slowString(start)
		case c < 0x20:
			return nil, &syntaxError{msg: "invalid character " + quoteChar(c) + " in string literal", off: i}
		default: // non-ASCII
			ascii = false
			i++
		}
	}
}

// Constants for testing eight bytes at a time.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainRun returns the index of the first byte at or after i that is not
// plain string content: a quote, a backslash, a control character or a
// non-ASCII byte (or len(b) when there is none). It tests eight bytes at a
// time, as strings are most of a Segment payload.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lsb * '"')
		s := x ^ (lsb * '\\')
		// A byte is zero in q or s where it is '"' or '\\'; (v-lsb)&^v
		// flags zero bytes, (x-0x20s)&^x bytes below 0x20 and x itself
		// non-ASCII bytes. Borrows can only set flags above a flagged
		// byte, so the lowest flag is exact.
		if m := ((q-lsb)&^q | (s-lsb)&^s | (x-lsb*0x20)&^x | x) & msb; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// slowString decodes a string with escapes or invalid UTF-8 the way
// encoding/json does: invalid bytes and unpaired surrogates become U+FFFD.
func (p *parser) slowString(start int) ([]byte, error) {
	out := p.buf[:0]
	i := start
	for i < len(p.b) {
		c := p.b[i]
		switch {
		case c == '"':
			p.i = i + 1
			p.buf = out
			return out, nil
		case c == '\\':
			i++
			if i >= len(p.b) {
				return nil, p.eof()
			}
			switch e := p.b[i]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i++
			case 'b':
				out = append(out, '\b')
				i++
			case 'f':
				out = append(out, '\f')
				i++
			case 'n':
				out = append(out, '\n')
				i++
			case 'r':
				out = append(out, '\r')
				i++
			case 't':
				out = append(out, '\t')
				i++
			case 'u':
				r, err := p.hex4(i + 1)
				if err != nil {
					return nil, err
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A valid pair is two \u escapes; anything else
					// leaves the next escape to the loop.
					r2 := rune(-1)
					if i+1 < len(p.b) && p.b[i] == '\\' && p.b[i+1] == 'u' {
						if v, err := p.hex4(i + 2); err == nil {
							r2 = v
						}
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						r = dec
						i += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, &syntaxError{msg: "invalid character " + quoteChar(e) + " in string escape code", off: i}
			}
		case c < 0x20:
			return nil, &syntaxError{msg: "invalid character " + quoteChar(c) + " in string literal", off: i}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, unicode.ReplacementChar)
			} else {
				out = append(out, p.b[i:i+size]...)
			}
			i += size
		}
	}
	p.buf = out
	return nil, p.eof()
}

// hex4 decodes the four hex digits of a \u escape starting at j.
func (p *parser) hex4(j int) (rune, error) {
	var r rune
	for k := j; k < j+4; k++ {
		if k >= len(p.b) {
			return 0, p.eof()
		}
		c := p.b[k]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, &syntaxError{msg: "invalid character " + quoteChar(c) + ` in \u hexadecimal character escape`, off: k}
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// skipString moves past the string at p.i, checking its syntax.
func (p *parser) skipString() error {
	b := p.b
	i := p.i + 1
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return p.eof()
		}
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			return nil
		case c == '\\':
			i++
			if i >= len(b) {
				return p.eof()
			}
			switch e := b[i]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, err := p.hex4(i + 1); err != nil {
					return err
				}
				i += 5
			default:
				return &syntaxError{msg: "invalid character " + quoteChar(e) + " in string escape code", off: i}
			}
		case c < 0x20:
			return &syntaxError{msg: "invalid character " + quoteChar(c) + " in string literal", off: i}
		default: // non-ASCII: encoding/json accepts any bytes here
			i++
		}
	}
}

// scanNumber moves past the number at p.i, checking its grammar, and
// returns its extent and whether it is a plain integer.
func (p *parser) scanNumber() (start int, integer bool, err error) {
	start = p.i
	i := p.i
	b := p.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false, p.eof()
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		p.i = i
		return 0, false, p.unexpected("in numeric literal")
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) {
			return 0, false, p.eof()
		}
		if b[i] < '0' || b[i] > '9' {
			p.i = i
			return 0, false, p.unexpected("after decimal point in numeric literal")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return 0, false, p.eof()
		}
		if b[i] < '0' || b[i] > '9' {
			p.i = i
			return 0, false, p.unexpected("in exponent of numeric literal")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	p.i = i
	return start, integer, nil
}

// number parses the number at p.i as a float64, exactly as
// strconv.ParseFloat (and so encoding/json) would.
func (p *parser) number() (any, error) {
	start, integer, err := p.scanNumber()
	if err != nil {
		return nil, err
	}
	lit := p.b[start:p.i]
	if integer {
		digits := lit
		neg := lit[0] == '-'
		if neg {
			digits = lit[1:]
		}
		// Integers of up to 15 digits are exact in a float64.
		if len(digits) <= 15 {
			var n int64
			for _, c := range digits {
				n = n*10 + int64(c-'0')
			}
			f := float64(n)
			if neg {
				f = -f
			}
			return p.boxNumber(f), nil
		}
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		if p.sem == nil {
			p.sem = fmt.Errorf("the number %s, which is out of range of a 64-bit float", truncate(string(lit)))
		}
		return nil, nil
	}
	return p.boxNumber(f), nil
}

// boxString returns the string value b as an any, shared with an equal
// value met before in the request when the cache still holds it.
func (p *parser) boxString(b []byte) any {
	n := len(b)
	if n == 0 {
		return ""
	}
	if n > 32 {
		return string(b)
	}
	h := uint(n)*131 + uint(b[0])*31 + uint(b[n-1])*7 + uint(b[n/2])
	slot := &p.strs[h%uint(len(p.strs))]
	if s, ok := (*slot).(string); ok && s == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

// boxNumber returns f as an any, shared with an equal number met before
// in the request when the cache still holds it.
func (p *parser) boxNumber(f float64) any {
	x := math.Float64bits(f)
	slot := &p.nums[(x^x>>29^x>>52)%uint64(len(p.nums))]
	if v, ok := (*slot).(float64); ok && math.Float64bits(v) == x {
		return *slot
	}
	*slot = f
	return *slot
}

// truncate shortens a value quoted in an error sentence.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
