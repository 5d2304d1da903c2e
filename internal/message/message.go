package message

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// Request-level errors. Decode and Gunzip wrap them with the precise
// reason; callers test for them with errors.Is and refuse the whole request
// (4xx, nothing stored).
var (
	// ErrMalformed: the body is not a well-formed JSON object of the
	// expected shape (or not valid gzip).
	ErrMalformed = errors.New("malformed request")
	// ErrTooLarge: the body or one of its messages is over a size limit.
	ErrTooLarge = errors.New("request too large")
)

// Limits bounds what one request may carry. A zero or negative field means
// its default (see DefaultLimits), so the zero Limits is usable.
type Limits struct {
	// MaxMessageBytes bounds one message's raw JSON; a larger message
	// refuses the whole request (ErrTooLarge).
	MaxMessageBytes int
	// MaxBatchBytes bounds the body (after gunzip); a larger body refuses
	// the whole request (ErrTooLarge).
	MaxBatchBytes int
	// MaxProperties bounds the top-level keys of an event's "properties"
	// as sent; a message over it is rejected alone.
	MaxProperties int
	// MaxTraits bounds the traits one message sets on the profile (and the
	// traits of a group call's group); a message over it is rejected alone.
	MaxTraits int
}

// DefaultLimits returns the limits of the public contract: 32 KB per
// message, 500 KB per body, 255 properties and 500 traits per message.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: 32 * 1024,
		MaxBatchBytes:   500 * 1024,
		MaxProperties:   255,
		MaxTraits:       500,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = d.MaxBatchBytes
	}
	if l.MaxProperties <= 0 {
		l.MaxProperties = d.MaxProperties
	}
	if l.MaxTraits <= 0 {
		l.MaxTraits = d.MaxTraits
	}
	return l
}

// Request is a decoded ingestion request.
type Request struct {
	// WriteKey is the body's "writeKey" string field, if any: an
	// alternative to HTTP Basic auth.
	WriteKey string
	// Items holds the request's messages in array order; exactly one for
	// the single-message routes.
	Items []Item
}

// Item is one message of a request: either valid (Msg set) or rejected on
// its own (Err set).
type Item struct {
	// Index is the message's position in the batch (0 for single routes).
	Index int
	// MessageID is the message's "messageId" (numbers converted to their
	// decimal string), also for rejected messages when it could be read.
	MessageID string
	// Msg is the validated message; nil when Err != nil.
	Msg *model.Message
	// Err is the reason the message alone is rejected: a sentence naming
	// the offending field.
	Err error
	// Raw is the message exactly as sent, also for rejected ones.
	Raw json.RawMessage
	// Origin, when set, names where the item came from (a Kafka record's
	// kafka:<topic>:<partition>:<offset>, a binlog position) in the
	// dead-letter log instead of the submission's source.
	Origin string
}

// Decode decodes and validates the body of a POST to /v1/{route}, where
// route is "batch", "identify", "track", "alias", "page", "screen" or
// "group". The body must already be decompressed.
//
// A request-level problem (not a JSON object, no "batch" array, a size
// limit exceeded) returns an error wrapping ErrMalformed or ErrTooLarge and
// no Request. Otherwise every message becomes one Item, valid or rejected
// alone.
//
// The Raw fields of the result are sub-slices of body, which must not be
// modified afterwards.
func Decode(route string, body []byte, receivedAt time.Time, lim Limits) (*Request, error) {
	lim = lim.withDefaults()
	var single model.MessageType
	switch route {
	case "batch":
	case "identify", "track", "alias", "page", "screen", "group":
		single = model.MessageType(route)
	default:
		return nil, fmt.Errorf("message: unknown route %q", route)
	}
	if len(body) > lim.MaxBatchBytes {
		return nil, fmt.Errorf("body is %d bytes, over the %d-byte limit: %w", len(body), lim.MaxBatchBytes, ErrTooLarge)
	}
	p := &parser{b: body}
	p.ws()
	if p.i >= len(p.b) {
		return nil, fmt.Errorf("body is empty: %w", ErrMalformed)
	}
	if p.b[p.i] != '{' {
		return nil, notObject(p)
	}
	d := &decoded{single: single, receivedAt: receivedAt, lim: lim}
	var err error
	if single != "" {
		err = p.single(d)
	} else {
		err = p.batch(d)
	}
	if err != nil {
		return nil, err
	}
	return &Request{WriteKey: d.writeKey, Items: d.items}, nil
}

// notObject explains why a body that does not start with '{' is refused.
func notObject(p *parser) error {
	k := p.peek()
	if err := p.skip(); err != nil {
		return fmt.Errorf("body is not a JSON object: %w: %w", err, ErrMalformed)
	}
	if err := p.end(); err != nil {
		return err
	}
	return fmt.Errorf("body is not a JSON object, it is %s: %w", k, ErrMalformed)
}

// end refuses anything but whitespace after the top-level value.
func (p *parser) end() error {
	p.ws()
	if p.i < len(p.b) {
		return fmt.Errorf("body is not a JSON object: %w: %w", p.unexpected("after top-level value"), ErrMalformed)
	}
	return nil
}

// Gunzip reads a gzip stream (one or more members) and returns its
// decompressed contents. Output over max bytes (the default batch limit
// when max <= 0) is refused with ErrTooLarge after reading at most max+1
// bytes of it; a stream that is not valid gzip is ErrMalformed. The caller
// bounds the compressed input.
func Gunzip(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultLimits().MaxBatchBytes
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("body is not valid gzip: %v: %w", err, ErrMalformed)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("body is not valid gzip: %v: %w", err, ErrMalformed)
	}
	if len(out) > max {
		return nil, fmt.Errorf("gunzipped body is over the %d-byte limit: %w", max, ErrTooLarge)
	}
	return out, nil
}
