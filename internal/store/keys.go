package store

import (
	"encoding/binary"
	"math"
	"time"
)

// Key tags. docs/format.md describes each one.
const (
	tagMeta      = 0x01 // 0x01 name → global metadata (format version)
	tagWSName    = 'W'  // W name → u32 workspace number
	tagWS        = 'w'  // w u32 → workspace record (JSON)
	tagKey       = 'K'  // K sha256(key) → key record (workspace number, role)
	tagCounters  = 'c'  // c ws → workspace counters
	tagID        = 'i'  // i ws id → u32 profile number (always the root)
	tagProfile   = 'p'  // p ws num → profile record (JSON)
	tagLink      = 'l'  // l ws num → u32 profile number it was merged into
	tagEvent     = 'e'  // e ws day 'p' num ts seq → event; e ws day 'n' nameID ts num seq → nil
	tagMsgID     = 'm'  // m ws messageId → u32 day received (dedup set)
	tagReject    = 'r'  // r ws seq → rejection record (JSON)
	tagSchema    = 's'  // s ws kind name → schema entry (JSON)
	tagEventName = 'n'  // n ws name → u32 event-name id
	tagJournal   = 'J'  // J ws seq → one commit's index changes but its events, until the index's next base
	tagJournalEv = 'E'  // E ws seq → the events of journal entry seq, until the index's next checkpoint
)

// Sub-tags of event keys: the primary copy by profile, and the name index.
const (
	evByProfile = 'p'
	evByName    = 'n'
)

// Schema entry kinds.
const (
	SchemaTrait = 't'
	SchemaEvent = 'e'
)

func wsKey(tag byte, ws uint32, extra int) []byte {
	k := make([]byte, 5, 5+extra)
	k[0] = tag
	binary.BigEndian.PutUint32(k[1:], ws)
	return k
}

func appendU32(k []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(k, v) }
func appendU64(k []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(k, v) }

// Day is the number of whole UTC days since the Unix epoch, clamped to
// [0, MaxUint32]. Events are bucketed by it so that retention is one range
// deletion.
func Day(t time.Time) uint32 {
	d := t.Unix() / 86400
	if d < 0 {
		return 0
	}
	if d > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(d)
}

// encodeTime maps an instant to a uint64 that sorts like the instant
// (nanoseconds since the epoch with the sign bit flipped).
func encodeTime(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }
func decodeTime(v uint64) time.Time { return time.Unix(0, int64(v^(1<<63))).UTC() }

// IDKey is the key linking an id (userId or anonymousId) to its profile.
func IDKey(ws uint32, id string) []byte {
	return append(wsKey(tagID, ws, len(id)), id...)
}

// ProfileKey is the key of a root profile's record.
func ProfileKey(ws, num uint32) []byte { return appendU32(wsKey(tagProfile, ws, 4), num) }

// LinkKey records that profile num was merged into another.
func LinkKey(ws, num uint32) []byte { return appendU32(wsKey(tagLink, ws, 4), num) }

// CountersKey holds a workspace's counters.
func CountersKey(ws uint32) []byte { return wsKey(tagCounters, ws, 0) }

// MsgIDKey is a messageId's entry in the dedup set.
func MsgIDKey(ws uint32, id string) []byte {
	return append(wsKey(tagMsgID, ws, len(id)), id...)
}

// MsgIDRange bounds a workspace's dedup set: [lo, hi).
func MsgIDRange(ws uint32) (lo, hi []byte) { return wsRange(tagMsgID, ws) }

// RejectKey is a dead-letter entry.
func RejectKey(ws uint32, seq uint64) []byte { return appendU64(wsKey(tagReject, ws, 8), seq) }

// SchemaKey is a schema registry entry.
func SchemaKey(ws uint32, kind byte, name string) []byte {
	k := append(wsKey(tagSchema, ws, 1+len(name)), kind)
	return append(k, name...)
}

// EventNameKey maps an event name to its dense id.
func EventNameKey(ws uint32, name string) []byte {
	return append(wsKey(tagEventName, ws, len(name)), name...)
}

// EventKey is the primary key of an event: by day, then profile, then time.
func EventKey(ws, day, num uint32, ts time.Time, seq uint64) []byte {
	k := appendU32(wsKey(tagEvent, ws, 4+1+4+8+8), day)
	k = append(k, evByProfile)
	k = appendU32(k, num)
	k = appendU64(k, encodeTime(ts))
	return appendU64(k, seq)
}

// EventNameIndexKey is an event's entry in the (name, time) index that
// older stores hold: it is no longer written (nothing read it), only
// deleted with its user.
func EventNameIndexKey(ws, day, nameID uint32, ts time.Time, num uint32, seq uint64) []byte {
	k := appendU32(wsKey(tagEvent, ws, 4+1+4+8+4+8), day)
	k = append(k, evByName)
	k = appendU32(k, nameID)
	k = appendU64(k, encodeTime(ts))
	k = appendU32(k, num)
	return appendU64(k, seq)
}

// eventDayPrefix is the start of a day's events of one workspace.
func eventDayPrefix(ws, day uint32) []byte { return appendU32(wsKey(tagEvent, ws, 4), day) }

// profileEventsPrefix is the start of one profile's events on one day.
func profileEventsPrefix(ws, day, num uint32) []byte {
	return appendU32(append(eventDayPrefix(ws, day), evByProfile), num)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// wsRange is the key range of one tag within one workspace.
func wsRange(tag byte, ws uint32) (lo, hi []byte) {
	lo = wsKey(tag, ws, 0)
	return lo, prefixEnd(lo)
}

// Segment keys.
const (
	tagSegment = 'g' // g ws id → segment record (JSON)
	tagMembers = 'G' // G ws id → roaring bitmap of member profile numbers
)

// SegmentKey is a segment's definition record.
func SegmentKey(ws uint32, id string) []byte { return append(wsKey(tagSegment, ws, len(id)), id...) }

// MembersKey is a segment's stored membership.
func MembersKey(ws uint32, id string) []byte { return append(wsKey(tagMembers, ws, len(id)), id...) }

// Membership change keys.
const (
	tagChange    = 'x' // x ws seq → change record (JSON)
	tagChangeSeq = 'C' // C ws → u64 last change seq
	tagTimer     = 'T' // T ws due num segID → nil: a pending re-evaluation
	tagCompacted = 'X' // X ws → u64 seq through which the change log is compacted
	tagLiveSeq   = 'L' // L ws → u64 last index journal entry whose membership changes are written
)

// LiveSeqKey holds the last index journal entry (store.JournalKey) whose
// membership changes are written: the changes follow the journal entry in
// a commit of their own, and a start re-evaluates the profiles of the
// entries after it.
func LiveSeqKey(ws uint32) []byte { return wsKey(tagLiveSeq, ws, 0) }

// CompactedKey holds the seq through which a workspace's change log keeps
// only the latest change of each (segment, user).
func CompactedKey(ws uint32) []byte { return wsKey(tagCompacted, ws, 0) }

// ChangeKey is a membership change's key.
func ChangeKey(ws uint32, seq uint64) []byte { return appendU64(wsKey(tagChange, ws, 8), seq) }

// ChangeSeqKey holds a workspace's last change seq.
func ChangeSeqKey(ws uint32) []byte { return wsKey(tagChangeSeq, ws, 0) }

// TimerKey is a pending time-driven re-evaluation of one profile in one
// segment.
func TimerKey(ws uint32, due time.Time, num uint32, seg string) []byte {
	k := appendU64(wsKey(tagTimer, ws, 8+4+len(seg)), encodeTime(due))
	k = appendU32(k, num)
	return append(k, seg...)
}

// Sink keys.
const (
	tagSink       = 'h' // h ws id → sink record (JSON)
	tagSinkCursor = 'H' // H ws id → u64 last seq delivered
)

// SinkKey is a sink's configuration.
func SinkKey(ws uint32, id string) []byte { return append(wsKey(tagSink, ws, len(id)), id...) }

// SinkCursorKey is a sink's delivery cursor.
func SinkCursorKey(ws uint32, id string) []byte {
	return append(wsKey(tagSinkCursor, ws, len(id)), id...)
}

// SinkRange is the key range of a workspace's sink records.
func SinkRange(ws uint32) (lo, hi []byte) { return wsRange(tagSink, ws) }

// Bot keys.
const tagBot = 'B' // B ws num → u32 last minute (Unix minutes) the profile was over the bot threshold

// BotKey marks a profile flagged as a bot.
func BotKey(ws, num uint32) []byte { return appendU32(wsKey(tagBot, ws, 4), num) }

// JournalKey is the key of the index journal's entry seq (package index
// encodes the value).
func JournalKey(ws uint32, seq uint64) []byte { return appendU64(wsKey(tagJournal, ws, 8), seq) }

// JournalRange is a workspace's journal keys: [lo, hi).
func JournalRange(ws uint32) (lo, hi []byte) { return wsRange(tagJournal, ws) }

// JournalEventsKey is the key of the events of the index journal's entry
// seq, kept apart from the entry: a checkpoint of the event columns makes
// them useless long before the entry's profiles' side is.
func JournalEventsKey(ws uint32, seq uint64) []byte {
	return appendU64(wsKey(tagJournalEv, ws, 8), seq)
}
