package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/model"
)

// ErrCorruption reports a record that cannot be decoded.
var ErrCorruption = errors.New("store: corrupt record")

// ErrNotFound reports a key that is not in the store.
var ErrNotFound = errors.New("not found")

// Role is what a key may do.
type Role byte

// Key roles.
const (
	RoleWrite Role = 'w' // ingest only
	RoleAPI   Role = 'a' // management and query of one workspace
	RoleAdmin Role = 'A' // creates workspaces
)

// KeyRecord is what a stored key grants, and since when.
type KeyRecord struct {
	Role      Role
	Workspace uint32
	CreatedAt time.Time // zero for keys stored before it was recorded
}

// A key record is the role byte and the workspace number (u32), then the
// creation time in Unix milliseconds (i64); records written before keys had
// a creation time end after the workspace number.
const (
	keyRecordV1Len = 5
	keyRecordLen   = 13
)

func encodeKeyRecord(r KeyRecord) []byte {
	b := make([]byte, keyRecordLen)
	b[0] = byte(r.Role)
	binary.BigEndian.PutUint32(b[1:], r.Workspace)
	var ms int64
	if !r.CreatedAt.IsZero() {
		ms = r.CreatedAt.UnixMilli()
	}
	binary.BigEndian.PutUint64(b[5:], uint64(ms))
	return b
}

func decodeKeyRecord(b []byte) (KeyRecord, error) {
	if len(b) != keyRecordV1Len && len(b) != keyRecordLen {
		return KeyRecord{}, fmt.Errorf("key record of %d bytes: %w", len(b), ErrCorruption)
	}
	r := KeyRecord{Role: Role(b[0]), Workspace: binary.BigEndian.Uint32(b[1:])}
	if len(b) == keyRecordLen {
		if ms := int64(binary.BigEndian.Uint64(b[5:])); ms != 0 {
			r.CreatedAt = time.UnixMilli(ms).UTC()
		}
	}
	switch r.Role {
	case RoleWrite, RoleAPI, RoleAdmin:
		return r, nil
	}
	return KeyRecord{}, fmt.Errorf("key record role %q: %w", b[0], ErrCorruption)
}

// Workspace is a workspace's stored record.
type Workspace struct {
	Name      string    `json:"name"`
	Num       uint32    `json:"num"`
	CreatedAt time.Time `json:"created_at"`
}

// Counters are a workspace's monotonic counters, rewritten with every
// commit that changes them.
type Counters struct {
	NextProfile uint32 // next dense profile number to hand out
	NextNameID  uint32 // next event-name id
	EventSeq    uint64 // last event sequence number used
	RejectSeq   uint64 // last dead-letter sequence number used
}

const countersLen = 4 + 4 + 8 + 8

// EncodeCounters encodes c.
func EncodeCounters(c Counters) []byte {
	b := make([]byte, 0, countersLen)
	b = appendU32(b, c.NextProfile)
	b = appendU32(b, c.NextNameID)
	b = appendU64(b, c.EventSeq)
	return appendU64(b, c.RejectSeq)
}

// DecodeCounters decodes a counters record.
func DecodeCounters(b []byte) (Counters, error) {
	if len(b) != countersLen {
		return Counters{}, fmt.Errorf("counters of %d bytes: %w", len(b), ErrCorruption)
	}
	return Counters{
		NextProfile: binary.BigEndian.Uint32(b),
		NextNameID:  binary.BigEndian.Uint32(b[4:]),
		EventSeq:    binary.BigEndian.Uint64(b[8:]),
		RejectSeq:   binary.BigEndian.Uint64(b[16:]),
	}, nil
}

// ProfileRecord is a root profile as stored.
type ProfileRecord struct {
	ID        string         `json:"id"`                // canonical id
	UserID    string         `json:"user_id,omitempty"` // the userId, once known
	IDs       []string       `json:"ids"`               // every linked id, canonical first
	Traits    map[string]any `json:"traits"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// EncodeProfile encodes a profile record.
func EncodeProfile(p *ProfileRecord) []byte {
	b, err := json.Marshal(p)
	if err != nil {
		// Traits come from decoded JSON, so they always encode.
		panic(fmt.Sprintf("store: encoding profile %q: %v", p.ID, err))
	}
	return b
}

// DecodeProfile decodes a profile record.
func DecodeProfile(b []byte) (*ProfileRecord, error) {
	var p ProfileRecord
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("profile record: %v: %w", err, ErrCorruption)
	}
	if p.ID == "" {
		return nil, fmt.Errorf("profile record without id: %w", ErrCorruption)
	}
	if p.Traits == nil {
		p.Traits = map[string]any{}
	}
	return &p, nil
}

// EncodeEvent encodes an event's value: its name, messageId and raw
// properties JSON. Time, profile and sequence live in the key.
func EncodeEvent(name, messageID string, props []byte) []byte {
	b := make([]byte, 0, 2+len(name)+len(messageID)+len(props)+4)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(messageID)))
	b = append(b, messageID...)
	return append(b, props...)
}

// StoredEvent is an event as read back, with its place in the store.
type StoredEvent struct {
	Profile uint32 // the profile number it was recorded under
	Seq     uint64
	model.Event
}

// decodeEvent decodes an event from its primary key and value.
func decodeEvent(key, val []byte) (StoredEvent, error) {
	// key: tag ws day 'p' num ts seq
	if len(key) != 1+4+4+1+4+8+8 || key[9] != evByProfile {
		return StoredEvent{}, fmt.Errorf("event key %x: %w", key, ErrCorruption)
	}
	ev := StoredEvent{
		Profile: binary.BigEndian.Uint32(key[10:]),
		Seq:     binary.BigEndian.Uint64(key[22:]),
	}
	ev.Timestamp = decodeTime(binary.BigEndian.Uint64(key[14:]))
	name, rest, err := readString(val)
	if err != nil {
		return StoredEvent{}, fmt.Errorf("event name: %w", err)
	}
	msgID, rest, err := readString(rest)
	if err != nil {
		return StoredEvent{}, fmt.Errorf("event messageId: %w", err)
	}
	ev.Name, ev.MessageID = name, msgID
	if len(rest) > 0 {
		if err := json.Unmarshal(rest, &ev.Properties); err != nil {
			return StoredEvent{}, fmt.Errorf("event properties: %v: %w", err, ErrCorruption)
		}
	}
	if ev.Properties == nil {
		ev.Properties = map[string]any{}
	}
	return ev, nil
}

func readString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, ErrCorruption
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// Rejection is one entry of the dead-letter log.
type Rejection struct {
	Seq        uint64          `json:"seq"`
	ReceivedAt time.Time       `json:"received_at"`
	Source     string          `json:"source"` // "http", "import", ...
	Index      int             `json:"index"`  // position in its batch; -1 for a whole request
	MessageID  string          `json:"messageId,omitempty"`
	Error      string          `json:"error"`
	Message    json.RawMessage `json:"message,omitempty"` // the message as sent, when it was JSON
	Body       string          `json:"body,omitempty"`    // the bytes as sent, when they were not JSON
}

// DecodeRejection decodes a dead-letter entry.
func DecodeRejection(b []byte) (*Rejection, error) {
	var r Rejection
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("rejection record: %v: %w", err, ErrCorruption)
	}
	return &r, nil
}

// ReadEvent reads the stored event of profile num at ts with seq; false
// when it is not stored (deleted since, or past retention).
func ReadEvent(r pebble.Reader, ws, num uint32, ts time.Time, seq uint64) (StoredEvent, bool, error) {
	key := EventKey(ws, Day(ts), num, ts, seq)
	v, ok, err := Get(r, key)
	if err != nil || !ok {
		return StoredEvent{}, false, err
	}
	ev, err := decodeEvent(key, v)
	return ev, err == nil, err
}
