package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// inputFile is one file named on the command line.
type inputFile struct {
	path    string // as given
	idName  string // base name without .gz: what derived messageIds hash
	kind    string // kindNDJSON or kindCSV
	gz      bool
	size    int64
	statErr error
}

// location is where a message came from: a file as named on the command
// line and a 1-based line number.
type location struct {
	file string
	line int
}

func (l location) String() string { return fmt.Sprintf("%s:%d", l.file, l.line) }

// entry is one message read from a file: either its JSON, to be sent, or a
// rejection found while reading (reject set), which is never sent as a
// message but still counted, reported and, where the destination allows,
// dead-lettered.
type entry struct {
	loc    location
	raw    []byte // the message JSON; for a local rejection, the bytes as read (possibly cut)
	reject string // why the message was rejected before sending; the summary groups by it
	detail string // more about a local rejection, for the summary's first example
}

// sinkError marks a failure of the destination (the server or the store),
// which stops the whole import, unlike a file that cannot be read.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// importer reads files into entries and sends them in batches.
type importer struct {
	sink     importSink
	batch    int // entries per batch
	maxMsg   int // bytes per message
	maxBody  int // bytes of messages and commas per batch body
	idColumn string
	stdin    io.Reader // the file "-"
	sum      *importSummary
	prog     *progress

	pending      []entry
	pendingBytes int // bytes the pending messages take in a body, with a comma each
}

// add queues one entry, sending the batch before it when the entry would
// not fit and the batch after it when it is full.
func (im *importer) add(ctx context.Context, e entry) error {
	im.sum.Read++
	im.prog.msgs.Add(1)
	if e.reject == "" {
		n := len(e.raw) + 1
		if len(im.pending) > 0 && im.pendingBytes+n-1 > im.maxBody {
			if err := im.flush(ctx); err != nil {
				return err
			}
		}
		im.pendingBytes += n
	}
	im.pending = append(im.pending, e)
	if len(im.pending) >= im.batch {
		return im.flush(ctx)
	}
	return nil
}

// flush sends the pending batch. Its error is a *sinkError.
func (im *importer) flush(ctx context.Context) error {
	if len(im.pending) == 0 {
		return nil
	}
	batch := im.pending
	im.pending, im.pendingBytes = nil, 0
	res, err := im.sink.send(ctx, batch)
	if err != nil {
		first, last := batch[0].loc, batch[len(batch)-1].loc
		span := first.String()
		if last != first {
			if last.file == first.file {
				span += fmt.Sprintf("-%d", last.line)
			} else {
				span += " to " + last.String()
			}
		}
		return &sinkError{fmt.Errorf("send messages of %s: %w", span, err)}
	}
	im.sum.Accepted += res.accepted
	im.sum.Duplicates += res.duplicates
	for _, r := range res.rejected {
		e := batch[r.index]
		if e.reject != "" {
			im.sum.reject(e.reject, e.loc, e.detail, !im.sink.deadLettersLocal())
		} else {
			im.sum.reject(r.reason, e.loc, "", false)
		}
	}
	im.prog.rejected.Add(int64(len(res.rejected)))
	return nil
}

// countingReader counts the bytes read from a file for the progress bar.
type countingReader struct {
	r    io.Reader
	n    *atomic.Int64
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	c.read += int64(n)
	return n, err
}

// importFile reads one file to its end, queueing its messages. A problem
// with the file itself is returned wrapped with the file and line; a
// failure of the destination is a *sinkError.
func (im *importer) importFile(ctx context.Context, f *inputFile) error {
	var in io.Reader = im.stdin
	if f.path != "-" {
		fh, err := os.Open(f.path)
		if err != nil {
			return readErr(f.path, err)
		}
		defer fh.Close()
		in = fh
	}
	cr := &countingReader{r: in, n: &im.prog.bytes}
	// Whatever happens, the file counts as read in full for the bar.
	defer func() {
		if rest := f.size - cr.read; rest > 0 {
			im.prog.bytes.Add(rest)
		}
	}()
	var r io.Reader = cr
	if f.gz {
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return fmt.Errorf("read %s: not a gzip file: %w", f.path, err)
		}
		defer zr.Close()
		r = zr
	}
	if f.kind == kindCSV {
		return im.readCSV(ctx, f, r)
	}
	return im.readNDJSON(ctx, f, r)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// readNDJSON queues every non-blank line of an NDJSON file.
func (im *importer) readNDJSON(ctx context.Context, f *inputFile, r io.Reader) error {
	lr := &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: im.maxMsg}
	for {
		line, size, long, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if lr.n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// The line was cut short by the error: it is not sent.
			return fmt.Errorf("read %s line %d: %w", f.path, lr.n, err)
		}
		if lr.n == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if long || len(bytes.TrimSpace(line)) > 0 {
			if err := im.add(ctx, im.ndjsonEntry(f, lr.n, line, size, long)); err != nil {
				return err
			}
		}
	}
}

// ndjsonEntry turns one line into an entry, giving it a messageId when it
// has none.
func (im *importer) ndjsonEntry(f *inputFile, n int, line []byte, size int, long bool) entry {
	loc := location{f.name(), n}
	tooLarge := func(size int) entry {
		keep := min(len(line), 1024)
		return entry{
			loc:    loc,
			raw:    bytes.Clone(line[:keep]),
			reject: fmt.Sprintf("message is over the %d-byte limit", im.maxMsg),
			detail: fmt.Sprintf("%d bytes", size),
		}
	}
	if long {
		return tooLarge(size)
	}
	line = bytes.TrimSpace(line)
	if !json.Valid(line) {
		detail := "invalid JSON"
		var v json.RawMessage
		if err := json.Unmarshal(line, &v); err != nil {
			detail = err.Error()
		}
		return entry{loc: loc, raw: bytes.Clone(line), reject: "line is not valid JSON", detail: detail}
	}
	raw := withMessageID(line, f.idName, n)
	if len(raw) > im.maxMsg {
		return tooLarge(len(raw))
	}
	return entry{loc: loc, raw: raw}
}

// withMessageID returns a copy of a message line, with a messageId derived
// from the file name, line number and content appended when the line is a
// JSON object without one (absent, null or ""). The decoder, like
// encoding/json, takes the last of repeated keys.
func withMessageID(line []byte, name string, n int) []byte {
	if len(line) == 0 || line[0] != '{' {
		return bytes.Clone(line) // not an object: the decoder rejects it
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return bytes.Clone(line)
	}
	if v, ok := top["messageId"]; ok {
		if s := string(bytes.TrimSpace(v)); s != "null" && s != `""` {
			return bytes.Clone(line)
		}
	}
	id := importMessageID(name, n, line)
	out := make([]byte, 0, len(line)+len(id)+16)
	out = append(out, line[:len(line)-1]...)
	if len(top) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"messageId":"`...)
	out = append(out, id...)
	out = append(out, `"}`...)
	return out
}

// importMessageID derives a message's id from where it came from and what
// it says, so that importing the same file again is deduplicated. The file
// is named by its base name without .gz, so a file compressed or moved to
// another directory still yields the same ids.
func importMessageID(name string, line int, content []byte) string {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(line), 10))
	h.Write([]byte{0})
	h.Write(content)
	return "import-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// lineReader reads lines of any length, keeping at most max bytes of each.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	n   int // number of the line last returned
}

// next returns the next line without its line ending ("\n" or "\r\n").
// A line over max bytes is cut, with long set and size its full length.
// A read error comes with the partial line it cut; io.EOF comes alone.
func (lr *lineReader) next() (line []byte, size int, long bool, err error) {
	lr.buf = lr.buf[:0]
	keep := lr.max + 2 // room for a line ending
	var last2 [2]byte
	for {
		chunk, e := lr.br.ReadSlice('\n')
		size += len(chunk)
		if room := keep - len(lr.buf); room > 0 {
			lr.buf = append(lr.buf, chunk[:min(room, len(chunk))]...)
		}
		for _, c := range chunk[max(0, len(chunk)-2):] {
			last2[0], last2[1] = last2[1], c
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if e != io.EOF {
			err = e
		}
		if size == 0 && e == io.EOF {
			return nil, 0, false, io.EOF
		}
		break
	}
	lr.n++
	eol := 0
	if size > 0 && last2[1] == '\n' {
		eol = 1
		if size > 1 && last2[0] == '\r' {
			eol = 2
		}
	}
	size -= eol
	if size > lr.max {
		return lr.buf[:min(len(lr.buf), lr.max)], size, true, err
	}
	return lr.buf[:size], size, false, err
}

// csvMessage is the identify message a CSV row becomes.
type csvMessage struct {
	Type        string         `json:"type"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	Traits      map[string]any `json:"traits"`
	MessageID   string         `json:"messageId,omitempty"`
}

// readCSV queues one identify message per row of a CSV file.
func (im *importer) readCSV(ctx context.Context, f *inputFile, r io.Reader) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // rows with the wrong width are rejected alone
	header, err := cr.Read()
	if err == io.EOF {
		return nil // an empty file holds no profiles
	}
	if err != nil {
		return fmt.Errorf("read %s header: %w", f.path, err)
	}
	cols := make([]string, len(header))
	seen := map[string]int{}
	idCol, anonCol := -1, -1
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, string(utf8BOM))
		}
		h = strings.TrimSpace(h)
		if h == "" {
			return fmt.Errorf("read %s header: column %d has no name", f.path, i+1)
		}
		if j, dup := seen[h]; dup {
			return fmt.Errorf("read %s header: columns %d and %d are both named %q", f.path, j+1, i+1, h)
		}
		seen[h] = i
		cols[i] = h
		switch h {
		case im.idColumn:
			idCol = i
		case "anonymousId":
			anonCol = i
		}
	}
	if im.idColumn == "anonymousId" {
		idCol, anonCol = -1, idCol
	}
	if idCol < 0 && anonCol < 0 {
		return fmt.Errorf("read %s header: no %q or \"anonymousId\" column to identify the profiles (name the id column with --id-column)", f.path, im.idColumn)
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	encode := func(m *csvMessage) []byte {
		buf.Reset()
		if err := enc.Encode(m); err != nil {
			// Only strings, booleans and checked numbers are encoded.
			panic(fmt.Sprintf("encode CSV row: %v", err))
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}

	line := 1
	for rows := 1; ; rows++ {
		if rows%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("read %s line %d: %w", f.path, line+1, err)
			}
			line = pe.StartLine
			e := entry{
				loc:    location{f.name(), pe.StartLine},
				reject: "row is not valid CSV",
				detail: fmt.Sprintf("%v at line %d, column %d", pe.Err, pe.Line, pe.Column),
			}
			if err := im.add(ctx, e); err != nil {
				return err
			}
			continue
		}
		line, _ = cr.FieldPos(0)
		loc := location{f.name(), line}
		blank := true
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
			blank = blank && rec[i] == ""
		}
		if blank {
			continue
		}
		if len(rec) != len(cols) {
			raw, _ := json.Marshal(rec)
			e := entry{
				loc:    loc,
				raw:    raw,
				reject: "row has a different number of fields than the header",
				detail: fmt.Sprintf("%d fields, the header has %d", len(rec), len(cols)),
			}
			if err := im.add(ctx, e); err != nil {
				return err
			}
			continue
		}
		m := csvMessage{Type: "identify", Traits: map[string]any{}}
		for i, v := range rec {
			switch {
			case i == idCol:
				m.UserID = v
			case i == anonCol:
				m.AnonymousID = v
			case v != "":
				m.Traits[cols[i]] = csvValue(v)
			}
		}
		m.MessageID = importMessageID(f.idName, line, encode(&m))
		raw := bytes.Clone(encode(&m))
		e := entry{loc: loc, raw: raw}
		if len(raw) > im.maxMsg {
			e.reject = fmt.Sprintf("message is over the %d-byte limit", im.maxMsg)
			e.detail = fmt.Sprintf("%d bytes", len(raw))
		}
		if err := im.add(ctx, e); err != nil {
			return err
		}
	}
}

// csvValue types one (trimmed, non-empty) CSV cell: a JSON number becomes
// a number, true or false (any case) a boolean, anything else stays text.
// Numbers keep their literal, so that "007" (not a JSON number) stays the
// string "007" and 1e999 (out of range) stays text.
func csvValue(s string) any {
	switch {
	case strings.EqualFold(s, "true"):
		return true
	case strings.EqualFold(s, "false"):
		return false
	case isJSONNumber(s):
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return json.Number(s)
		}
	}
	return s
}

// isJSONNumber reports whether s is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// name is how messages of f are located in reports: its path as given, or
// "stdin" for "-".
func (f *inputFile) name() string {
	if f.path == "-" {
		return "stdin"
	}
	return f.path
}
