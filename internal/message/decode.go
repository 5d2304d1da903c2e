package message

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// sfield is a scalar top-level field of a message as parsed: its JSON
// kind and, for strings and numbers, its text (a number's literal).
type sfield struct {
	kind     kind
	s        string
	off, end int // extent of the text in rawMsg.sb until materialised
}

// ofield is a field that must be an object: its kind and, when it is one,
// the decoded map and its bytes.
type ofield struct {
	kind kind
	m    map[string]any
	raw  []byte
}

// rawMsg is a message after one pass over its bytes: the fields the
// decoder uses, captured with their kinds so that validation can name
// wrong types; everything else is skipped.
type rawMsg struct {
	typ, messageID, userID, anonymousID, previousID, groupID sfield
	event, name, timestamp, originalTimestamp, sentAt        sfield
	writeKey                                                 sfield
	properties, traits, ctxTraits                            ofield
	context                                                  kind
	sem                                                      error // first out-of-range number, with its field
	// sb collects the text of the scalar fields while parsing, so that
	// one allocation makes all their strings (see materialise).
	sb []byte
}

// reset clears r for the next message, keeping its buffer.
func (r *rawMsg) reset() {
	sb := r.sb[:0]
	if sb == nil {
		sb = make([]byte, 0, 256)
	}
	*r = rawMsg{sb: sb}
}

// materialise gives the scalar fields their strings: substrings of one
// string holding all their text.
func (r *rawMsg) materialise() {
	if len(r.sb) == 0 {
		return
	}
	all := string(r.sb)
	for _, f := range [...]*sfield{&r.messageID, &r.userID, &r.anonymousID, &r.previousID, &r.groupID,
		&r.name, &r.timestamp, &r.originalTimestamp, &r.sentAt, &r.writeKey} {
		if f.kind == kindString || f.kind == kindNumber {
			f.s = all[f.off:f.end]
		}
	}
}

// decoded accumulates the items of one request.
type decoded struct {
	single     model.MessageType // the route's type; "" for a batch
	receivedAt time.Time
	lim        Limits
	writeKey   string
	items      []Item
	// pending lists the valid messages that still depend on the batch's
	// own "sentAt" and "context", which may come after the "batch" array.
	pending []pending
	// chunk hands out Messages a block at a time.
	chunk []model.Message
	// The batch's "sentAt" and "context".
	sentAt    sfield
	context   kind
	ctxTraits ofield
	r         rawMsg // the message being parsed
}

// pending is what a batch message left to the batch-level fields.
type pending struct {
	item      int
	sentAt    bool // it has no "sentAt" of its own
	timed     bool // its Timestamp came from the message, so skew applies
	ctxTraits bool // it has no "context.traits" of its own
}

// single parses the body of a single-message route: the body is the message.
func (p *parser) single(d *decoded) error {
	start := p.i
	// The message is the body without its surrounding whitespace: refuse
	// an oversized one before parsing it.
	end := len(p.b)
	for end > start && isSpace(p.b[end-1]) {
		end--
	}
	if n := end - start; n > d.lim.MaxMessageBytes {
		return fmt.Errorf("message is %d bytes, over the %d-byte limit: %w", n, d.lim.MaxMessageBytes, ErrTooLarge)
	}
	d.r.reset()
	if err := p.message(&d.r); err != nil {
		return fmt.Errorf("body is not a JSON object: %w: %w", err, ErrMalformed)
	}
	d.r.materialise()
	raw := p.b[start:p.i:p.i]
	if err := p.end(); err != nil {
		return err
	}
	if d.r.writeKey.kind == kindString {
		d.writeKey = d.r.writeKey.s
	}
	d.add(p, raw, kindObject)
	return nil
}

// batch parses the body of /v1/batch.
func (p *parser) batch(d *decoded) error {
	var haveBatch bool
	var batchKind kind
	var wk sfield
	err := p.fields(func(key []byte) error {
		switch string(key) {
		case "batch":
			batchKind = p.peek()
			if batchKind != kindArray {
				haveBatch = false
				return p.skip()
			}
			haveBatch = true
			return p.messages(d)
		case "sentAt":
			return p.scalar(&d.sentAt, nil)
		case "context":
			// Problems inside the batch's traits are reported for each
			// message that uses them.
			var err error
			d.context, _, err = p.context(&d.ctxTraits)
			return err
		case "writeKey":
			return p.scalar(&wk, nil)
		}
		return p.skip()
	})
	if err != nil {
		var tl *tooLarge
		if errors.As(err, &tl) {
			return fmt.Errorf("message %d is %d bytes, over the %d-byte limit: %w", tl.index, tl.size, d.lim.MaxMessageBytes, ErrTooLarge)
		}
		return fmt.Errorf("body is not a JSON object: %w: %w", err, ErrMalformed)
	}
	if err := p.end(); err != nil {
		return err
	}
	if !haveBatch {
		if batchKind.absent() {
			return fmt.Errorf(`body has no "batch" array: %w`, ErrMalformed)
		}
		return fmt.Errorf(`"batch" must be an array, not %s: %w`, batchKind, ErrMalformed)
	}
	if wk.kind == kindString {
		d.writeKey = wk.s
	}
	d.resolve(p)
	return nil
}

// tooLarge reports an oversized batch element out of the parsing callbacks.
type tooLarge struct{ index, size int }

func (e *tooLarge) Error() string { return "message too large" }

// messages parses the "batch" array at p.i, validating each message as
// soon as it is parsed.
func (p *parser) messages(d *decoded) error {
	if err := p.push(); err != nil {
		return err
	}
	p.i++
	// A repeated "batch" key replaces the earlier array, as it would in
	// encoding/json.
	d.items, d.pending = d.items[:0], d.pending[:0]
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return nil
	}
	for {
		start := p.i
		k := p.peek()
		d.r.reset()
		var err error
		if k == kindObject {
			err = p.message(&d.r)
			d.r.materialise()
		} else {
			err = p.skip()
		}
		if err != nil {
			return err
		}
		raw := p.b[start:p.i:p.i]
		if len(raw) > d.lim.MaxMessageBytes {
			return &tooLarge{index: len(d.items), size: len(raw)}
		}
		d.add(p, raw, k)
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
}

// add validates the message just parsed into d.r and appends its item.
func (d *decoded) add(p *parser, raw []byte, k kind) {
	it := Item{Index: len(d.items), Raw: raw}
	it.MessageID, _ = idValue(d.r.messageID, "messageId")
	if len(d.chunk) == cap(d.chunk) {
		n := 32
		if d.single != "" {
			n = 1
		}
		d.chunk = make([]model.Message, 0, n)
	}
	m := &d.chunk[:len(d.chunk)+1][len(d.chunk)]
	pd, err := d.finalize(p, &d.r, k, raw, m)
	if err != nil {
		*m = model.Message{}
		it.Err = err
	} else {
		d.chunk = d.chunk[:len(d.chunk)+1]
		it.Msg = m
		if pd.sentAt || pd.ctxTraits {
			pd.item = it.Index
			d.pending = append(d.pending, pd)
		}
	}
	d.items = append(d.items, it)
}

// fields walks the object at p.i, calling fn with each key (valid only
// during the call) positioned at its value; fn must consume the value.
func (p *parser) fields(fn func(key []byte) error) error {
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
		key, err := p.strBytes()
		if err != nil {
			return err
		}
		if err := p.colon(); err != nil {
			return err
		}
		if err := fn(key); err != nil {
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
}

// message parses the message object at p.i into r. Only syntax errors are
// returned; everything else is recorded for validation.
func (p *parser) message(r *rawMsg) error {
	return p.fields(func(key []byte) error {
		switch string(key) {
		case "type":
			return p.typeField(&r.typ)
		case "messageId":
			return p.scalar(&r.messageID, &r.sb)
		case "userId":
			return p.scalar(&r.userID, &r.sb)
		case "anonymousId":
			return p.scalar(&r.anonymousID, &r.sb)
		case "previousId":
			return p.scalar(&r.previousID, &r.sb)
		case "groupId":
			return p.scalar(&r.groupID, &r.sb)
		case "event":
			if p.peek() != kindString {
				return p.scalar(&r.event, nil)
			}
			// Event names repeat within a batch; share one copy.
			b, err := p.strBytes()
			r.event = sfield{kind: kindString, s: p.intern(b)}
			return err
		case "name":
			return p.scalar(&r.name, &r.sb)
		case "timestamp":
			return p.scalar(&r.timestamp, &r.sb)
		case "originalTimestamp":
			return p.scalar(&r.originalTimestamp, &r.sb)
		case "sentAt":
			return p.scalar(&r.sentAt, &r.sb)
		case "writeKey":
			return p.scalar(&r.writeKey, &r.sb)
		case "properties":
			return p.object1(&r.properties, "properties", &r.sem)
		case "traits":
			return p.object1(&r.traits, "traits", &r.sem)
		case "context":
			var sem, err error
			r.context, sem, err = p.context(&r.ctxTraits)
			if sem != nil && r.sem == nil {
				r.sem = sem
			}
			return err
		}
		return p.skip()
	})
}

// scalar captures a value whose string or number text is wanted; other
// kinds are only recorded. The text goes to *sb (and f.s is set later by
// materialise), or straight to f.s when sb is nil.
func (p *parser) scalar(f *sfield, sb *[]byte) error {
	*f = sfield{kind: p.peek()}
	var text []byte
	switch f.kind {
	case kindString:
		b, err := p.strBytes()
		if err != nil {
			return err
		}
		text = b
	case kindNumber:
		start, _, err := p.scanNumber()
		if err != nil {
			return err
		}
		text = p.b[start:p.i]
	default:
		return p.skip()
	}
	if sb == nil {
		f.s = string(text)
		return nil
	}
	f.off = len(*sb)
	*sb = append(*sb, text...)
	f.end = len(*sb)
	return nil
}

// typeField captures "type", without allocating for the six known types.
func (p *parser) typeField(f *sfield) error {
	if p.peek() != kindString {
		return p.scalar(f, nil)
	}
	b, err := p.strBytes()
	if err != nil {
		return err
	}
	*f = sfield{kind: kindString}
	for _, t := range [...]model.MessageType{model.Identify, model.Track, model.Alias, model.Page, model.Screen, model.Group} {
		if string(b) == string(t) {
			f.s = string(t)
			return nil
		}
	}
	f.s = string(b)
	return nil
}

// object1 captures a value that must be an object, decoding it when it is
// one; semantic problems inside it are recorded in *sem.
func (p *parser) object1(f *ofield, name string, sem *error) error {
	*f = ofield{kind: p.peek()}
	if f.kind != kindObject {
		return p.skip()
	}
	start := p.i
	m, err := p.object()
	if err != nil {
		return err
	}
	f.m = m
	f.raw = p.b[start:p.i:p.i]
	if p.sem != nil {
		if *sem == nil {
			*sem = fmt.Errorf("%q holds %w", name, p.sem)
		}
		p.sem = nil
	}
	return nil
}

// context parses a "context" value. Only its "traits" are decoded; the rest
// is checked for syntax and skipped. It returns the context's kind, the
// first semantic problem inside its traits, and any syntax error.
func (p *parser) context(traits *ofield) (k kind, sem, err error) {
	*traits = ofield{}
	k = p.peek()
	if k != kindObject {
		return k, nil, p.skip()
	}
	err = p.fields(func(key []byte) error {
		if string(key) == "traits" {
			return p.object1(traits, "context.traits", &sem)
		}
		return p.skip()
	})
	return k, sem, err
}

// finalize validates one parsed message and fills m. For a batch message
// it also reports what still depends on the batch's own fields.
func (d *decoded) finalize(p *parser, r *rawMsg, k kind, raw []byte, m *model.Message) (pending, error) {
	var pd pending
	if k != kindObject {
		return pd, fmt.Errorf("message is not a JSON object, it is %s", k)
	}
	msgID, err := idValue(r.messageID, "messageId")
	if err != nil {
		return pd, err
	}
	typ := d.single
	if typ == "" {
		if typ, err = messageType(r.typ); err != nil {
			return pd, err
		}
	}
	if r.sem != nil {
		return pd, r.sem
	}
	userID, err := idValue(r.userID, "userId")
	if err != nil {
		return pd, err
	}
	anonID, err := idValue(r.anonymousID, "anonymousId")
	if err != nil {
		return pd, err
	}
	*m = model.Message{
		Type:        typ,
		MessageID:   msgID,
		UserID:      userID,
		AnonymousID: anonID,
		ReceivedAt:  d.receivedAt,
		Raw:         raw,
	}

	// Identity and the fields each call requires.
	switch typ {
	case model.Alias:
		if m.PreviousID, err = idValue(r.previousID, "previousId"); err != nil {
			return pd, err
		}
		if userID == "" {
			return pd, errors.New(`alias message has no "userId"`)
		}
		if m.PreviousID == "" {
			return pd, errors.New(`alias message has no "previousId"`)
		}
	default:
		if userID == "" && anonID == "" {
			return pd, errors.New(`message has neither "userId" nor "anonymousId"`)
		}
	}
	switch typ {
	case model.Track:
		switch {
		case r.event.kind == kindString && r.event.s != "":
			m.Event = r.event.s
		case r.event.kind.absent() || r.event.kind == kindString:
			return pd, errors.New(`track message has no "event"`)
		default:
			return pd, fmt.Errorf(`"event" must be a string, not %s`, r.event.kind)
		}
	case model.Page, model.Screen:
		if k := r.name.kind; !k.absent() && k != kindString {
			return pd, fmt.Errorf(`"name" must be a string, not %s`, k)
		}
		m.Event = model.PageEvent
		if typ == model.Screen {
			m.Event = model.ScreenEvent
		}
	case model.Group:
		if m.GroupID, err = idValue(r.groupID, "groupId"); err != nil {
			return pd, err
		}
		if m.GroupID == "" {
			return pd, errors.New(`group message has no "groupId"`)
		}
		m.Event = model.GroupEvent
	}

	// Objects.
	if err := mustObject(r.properties.kind, "properties"); err != nil {
		return pd, err
	}
	if typ == model.Identify || typ == model.Group {
		if err := mustObject(r.traits.kind, "traits"); err != nil {
			return pd, err
		}
	}
	if err := mustObject(r.context, "context"); err != nil {
		return pd, err
	}
	if err := mustObject(r.ctxTraits.kind, "context.traits"); err != nil {
		return pd, err
	}
	pd.ctxTraits = d.single == "" && r.ctxTraits.kind.absent()

	// Timestamps.
	var have bool
	if !r.timestamp.kind.absent() {
		m.Timestamp, have, err = timeValue(r.timestamp, `"timestamp"`)
	} else {
		m.Timestamp, have, err = timeValue(r.originalTimestamp, `"originalTimestamp"`)
	}
	if err != nil {
		return pd, err
	}
	if !have {
		m.Timestamp = d.receivedAt
	}
	if !r.sentAt.kind.absent() {
		sentAt, _, err := timeValue(r.sentAt, `"sentAt"`)
		if err != nil {
			return pd, err
		}
		if have {
			m.Timestamp = m.Timestamp.Add(d.receivedAt.Sub(sentAt))
		}
	} else if d.single == "" {
		pd.sentAt, pd.timed = true, have
	}
	if have {
		m.Timestamp = m.Timestamp.UTC()
	}

	// Traits and properties, with their limits.
	traits := r.ctxTraits.m
	if typ == model.Identify && len(r.traits.m) > 0 {
		if traits == nil {
			traits = r.traits.m
		} else {
			for k, v := range r.traits.m {
				traits[k] = v
			}
		}
	}
	if len(traits) > d.lim.MaxTraits {
		return pd, fmt.Errorf("message sets %d traits, over the limit of %d", len(traits), d.lim.MaxTraits)
	}
	if len(traits) > 0 {
		m.Traits = traits
	}
	switch typ {
	case model.Track, model.Page, model.Screen:
		if n := len(r.properties.m); n > d.lim.MaxProperties {
			return pd, fmt.Errorf(`"properties" has %d keys, over the limit of %d`, n, d.lim.MaxProperties)
		}
		m.Properties = r.properties.m
		if typ != model.Track && r.name.kind == kindString && r.name.s != "" {
			if m.Properties == nil {
				m.Properties = make(map[string]any, 1)
			}
			m.Properties["name"] = r.name.s
		} else if len(m.Properties) > 0 {
			// The properties as sent are what the store keeps: they are
			// valid JSON that encoding/json reads back as m.Properties (the
			// parser reads strings and numbers as it does, and a repeated
			// key the same way: the last wins), and re-encoding the map
			// was the largest cost left in a request's goroutine.
			m.PropertiesJSON = r.properties.raw
		}
	case model.Group:
		if n := len(r.traits.m); n > d.lim.MaxTraits {
			return pd, fmt.Errorf(`group "traits" has %d keys, over the limit of %d`, n, d.lim.MaxTraits)
		}
		m.Properties = map[string]any{"groupId": m.GroupID}
		if r.traits.m != nil {
			m.Properties["traits"] = r.traits.m
		}
	}
	return pd, nil
}

// resolve applies the batch's "context" and "sentAt" to the messages that
// lack their own, rejecting those for which they are invalid.
func (d *decoded) resolve(p *parser) {
	for _, pd := range d.pending {
		it := &d.items[pd.item]
		if err := d.applyBatch(p, it.Msg, pd); err != nil {
			*it.Msg = model.Message{}
			it.Msg, it.Err = nil, err
		}
	}
}

func (d *decoded) applyBatch(p *parser, m *model.Message, pd pending) error {
	if pd.ctxTraits {
		traits, err := d.batchTraits(p)
		if err != nil {
			return err
		}
		if traits != nil {
			for k, v := range m.Traits { // the message's own traits win
				traits[k] = v
			}
			if len(traits) > d.lim.MaxTraits {
				return fmt.Errorf("message sets %d traits, over the limit of %d", len(traits), d.lim.MaxTraits)
			}
			if len(traits) > 0 {
				m.Traits = traits
			}
		}
	}
	if pd.sentAt {
		sentAt, ok, err := timeValue(d.sentAt, `batch "sentAt"`)
		if err != nil {
			return err
		}
		if ok && pd.timed {
			m.Timestamp = m.Timestamp.Add(d.receivedAt.Sub(sentAt)).UTC()
		}
	}
	return nil
}

// batchTraits returns the batch's context.traits, decoded afresh so that
// no two messages share a map, or nil when there are none.
func (d *decoded) batchTraits(p *parser) (map[string]any, error) {
	if k := d.context; !k.absent() && k != kindObject {
		return nil, fmt.Errorf(`batch "context" must be an object, not %s`, k)
	}
	switch k := d.ctxTraits.kind; {
	case k.absent():
		return nil, nil
	case k != kindObject:
		return nil, fmt.Errorf(`batch "context.traits" must be an object, not %s`, k)
	}
	sub := parser{b: d.ctxTraits.raw}
	m, err := sub.object()
	if err != nil {
		// Unreachable: the bytes were parsed once already.
		return nil, fmt.Errorf(`batch "context.traits": %w`, err)
	}
	if sub.sem != nil {
		return nil, fmt.Errorf(`batch "context.traits" holds %w`, sub.sem)
	}
	return m, nil
}

// timeValue reads an optional RFC 3339 field.
func timeValue(f sfield, name string) (time.Time, bool, error) {
	switch f.kind {
	case kindMissing, kindNull:
		return time.Time{}, false, nil
	case kindString:
		t, ok := model.ParseTime(f.s)
		if !ok {
			return time.Time{}, false, fmt.Errorf("%s must be an RFC 3339 time, not %q", name, truncate(f.s))
		}
		return t, true, nil
	}
	return time.Time{}, false, fmt.Errorf("%s must be an RFC 3339 time string, not %s", name, f.kind)
}

// mustObject rejects a present field that is not an object.
func mustObject(k kind, name string) error {
	if k.absent() || k == kindObject {
		return nil
	}
	return fmt.Errorf("%q must be an object, not %s", name, k)
}

// messageType reads a batch element's "type".
func messageType(f sfield) (model.MessageType, error) {
	switch f.kind {
	case kindMissing, kindNull:
		return "", errors.New(`message has no "type"`)
	case kindString:
		switch t := model.MessageType(f.s); t {
		case model.Identify, model.Track, model.Alias, model.Page, model.Screen, model.Group:
			return t, nil
		}
		return "", fmt.Errorf(`"type" %q is not one of identify, track, page, screen, group, alias`, truncate(f.s))
	}
	return "", fmt.Errorf(`"type" must be a string, not %s`, f.kind)
}

// idValue reads an optional identifier: a string, or a number converted to
// its decimal string as Segment does. Empty strings count as missing.
func idValue(f sfield, name string) (string, error) {
	switch f.kind {
	case kindMissing, kindNull:
		return "", nil
	case kindString:
		return f.s, nil
	case kindNumber:
		return numberID(f.s, name)
	}
	return "", fmt.Errorf("%q must be a string or a number, not %s", name, f.kind)
}

// numberID converts a JSON number literal to the identifier string:
// integers keep their digits exactly (so large ids survive), others are
// formatted in plain decimal (1.0 → "1", 1e3 → "1000").
func numberID(lit, name string) (string, error) {
	integer := true
	for i := 0; i < len(lit); i++ {
		if c := lit[i]; (c < '0' || c > '9') && !(i == 0 && c == '-') {
			integer = false
			break
		}
	}
	if integer {
		return lit, nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", fmt.Errorf("%q is the number %s, which is out of range of a 64-bit float", name, truncate(lit))
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}
