// Package model is Cohort's data model in one place: the messages that
// sources deliver, the profiles and events they turn into, and the value
// types the schema registry and the condition language reason about.
//
// Every other package speaks these types; none of them defines its own
// notion of a profile, an event or a value type.
package model

import (
	"encoding/json"
	"strings"
	"time"
)

// MessageType is the Segment spec call a message represents.
type MessageType string

// The message types of the Segment tracking spec.
const (
	Identify MessageType = "identify"
	Track    MessageType = "track"
	Alias    MessageType = "alias"
	Page     MessageType = "page"
	Screen   MessageType = "screen"
	Group    MessageType = "group"
)

// Event names given to calls that are not track calls, so that page views,
// screen views and group joins are queryable as events like any other.
const (
	PageEvent   = "$page"
	ScreenEvent = "$screen"
	GroupEvent  = "$group"
)

// Message is one validated, normalised Segment message, ready for the
// ingestion path. Timestamp is already corrected for client clock skew.
type Message struct {
	Type        MessageType
	MessageID   string
	UserID      string
	AnonymousID string
	PreviousID  string // alias only
	GroupID     string // group only
	// Event is the event name for track; for page, screen and group it is
	// PageEvent, ScreenEvent or GroupEvent.
	Event string
	// Traits are the traits to set on the profile: identify's traits and
	// every call's context.traits. Nil when there are none.
	Traits map[string]any
	// Unset names traits to remove from the profile before Traits are set
	// (a source's row deletion that unsets the row's traits); HTTP
	// messages never carry it.
	Unset []string
	// Properties are the event's properties (for page/screen the name is
	// added as "name"; for group the groupId as "groupId" and the group's
	// traits as "traits").
	Properties map[string]any
	// PropertiesJSON is Properties encoded for the store: the bytes as
	// sent when the decoder kept them (they read back as Properties), else
	// made by the submitting goroutine (Ingester.Submit) so the applier
	// does not; nil: encoded when written.
	PropertiesJSON []byte
	Timestamp      time.Time
	ReceivedAt     time.Time
	// Raw is the message exactly as sent, kept for the dead-letter log.
	Raw json.RawMessage
}

// IsEvent reports whether the message records an event.
func (m *Message) IsEvent() bool {
	switch m.Type {
	case Track, Page, Screen, Group:
		return true
	}
	return false
}

// Event is one stored behavioural event of a profile.
type Event struct {
	Name       string
	Timestamp  time.Time
	Properties map[string]any
	MessageID  string
}

// Profile is one resolved user: its canonical id, every id linked to it,
// and its current traits.
type Profile struct {
	ID     string         `json:"id"`
	IDs    []string       `json:"ids"`
	Traits map[string]any `json:"traits"`
}

// ValueType is the type of a JSON value as the schema registry and the
// condition language see it. Strings that are RFC 3339 instants are
// DateTime; all other strings are String.
type ValueType string

// Value types.
const (
	String   ValueType = "string"
	Number   ValueType = "number"
	Boolean  ValueType = "boolean"
	DateTime ValueType = "datetime"
	Array    ValueType = "array"
	Object   ValueType = "object"
	Null     ValueType = "null"
)

// TypeOf classifies a decoded JSON value (as encoding/json produces it).
func TypeOf(v any) ValueType {
	switch x := v.(type) {
	case nil:
		return Null
	case bool:
		return Boolean
	case float64, json.Number, int, int64:
		return Number
	case string:
		if _, ok := ParseTime(x); ok {
			return DateTime
		}
		return String
	case []any:
		return Array
	case map[string]any:
		return Object
	}
	return Null
}

// ParseTime parses an RFC 3339 instant (with or without fractional
// seconds). It reports false for anything else.
func ParseTime(s string) (time.Time, bool) {
	// Cheap rejection before the parser: an instant starts with a 4-digit
	// year and a dash.
	if len(s) < 20 || s[4] != '-' || s[0] < '0' || s[0] > '9' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// Lookup resolves a dotted property path ("a.b.c") inside nested objects.
// A key containing a dot is found too when it exists literally.
func Lookup(m map[string]any, path string) (any, bool) {
	if v, ok := m[path]; ok {
		return v, true
	}
	head, rest, found := strings.Cut(path, ".")
	if !found {
		return nil, false
	}
	sub, ok := m[head].(map[string]any)
	if !ok {
		return nil, false
	}
	return Lookup(sub, rest)
}
