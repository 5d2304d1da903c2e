package ingest

import "time"

// Changes is what one commit did to one workspace: the feed that keeps
// indexes and segment membership current.
type Changes struct {
	// Profiles holds every profile the commit created, changed or removed,
	// by number: its traits and canonical id before (Old nil and OldID ""
	// when created) and after (New nil and NewID "" when removed by a
	// merge or a deletion).
	Profiles []ProfileChange
	// Events are the events recorded, in order, under the profile number
	// that was the root when each was recorded.
	Events []EventAdded
	// Merges are the merges made, in order.
	Merges []Merge
	// Deleted are the profile numbers erased by user deletions (the root
	// and every number merged into it).
	Deleted []uint32
	// ReceivedAt is when the earliest message of these changes was
	// accepted.
	ReceivedAt time.Time
	// Origins names, by the root profile a message was applied to, where
	// the last such message came from when a source said so (a Kafka
	// record, a binlog position): the membership changes it causes carry
	// it.
	Origins map[uint32]string
}

func (c *Changes) empty() bool {
	return len(c.Profiles) == 0 && len(c.Events) == 0 && len(c.Merges) == 0 && len(c.Deleted) == 0
}

// ProfileChange is one profile's state before and after a commit.
type ProfileChange struct {
	Num          uint32
	OldID, NewID string
	Old, New     map[string]any
}

// EventAdded is one recorded event.
type EventAdded struct {
	Num        uint32
	Seq        uint64
	Name       string
	Timestamp  time.Time
	Properties map[string]any
}

// Merge records that profile Src was merged into Dst.
type Merge struct{ Src, Dst uint32 }
