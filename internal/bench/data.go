package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
)

// DefaultNow is the end of the generated period and the instant every
// benchmark evaluates at (the generator's default).
var DefaultNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// Data describes one generated data set. Every walk of the same Data
// yields the same profiles and events.
type Data struct {
	Profiles int
	Events   int
	Seed     uint64
	Now      time.Time // zero: DefaultNow
	Days     int       // zero: 30
	// InOrder: events arrive in timestamp order, up to an hour late (see
	// gen.Config.InOrder); else in random time order.
	InOrder bool
}

func (d Data) gen() gen.Config {
	now := d.Now
	if now.IsZero() {
		now = DefaultNow
	}
	days := d.Days
	if days <= 0 {
		days = 30
	}
	return gen.Config{Seed: d.Seed, Profiles: d.Profiles, Events: d.Events, Now: now, Days: days, InOrder: d.InOrder}
}

// At is the instant the benchmarks evaluate at: the end of the generated
// period.
func (d Data) At() time.Time { return d.gen().Now }

// Profile is one generated profile under its dense number. Numbers are the
// generator's profile indexes: profile i is number i, whether it is known
// by its userId or by its anonymous id.
type Profile struct {
	Num    uint32
	ID     string // the userId (identified) or the anonymous id
	Traits map[string]any
}

// Event is one generated event under its profile's number.
type Event struct {
	Num   uint32
	Name  string
	Time  time.Time
	Props map[string]any
}

// Patch is a later identify: traits merged (top-level keys) into a
// profile, and the profile's id when it changed (an anonymous visitor who
// identified).
type Patch struct {
	Num    uint32
	ID     string
	Traits map[string]any
}

// Sink receives a walk of a data set: first every profile (in batches),
// then the events in generation order (in batches), with the identifies
// that happened between them as patches (an alias of an anonymous id to
// its own profile changes nothing and is dropped).
type Sink struct {
	Profiles func(ctx context.Context, ps []Profile) error
	Events   func(ctx context.Context, es []Event, patches []Patch) error
}

// Walk generates the data set and feeds it to s in batches of batch
// items. It returns the number of events emitted.
func (d Data) Walk(ctx context.Context, batch int, s Sink) (int, error) {
	if d.Profiles < 1 {
		return 0, fmt.Errorf("data set needs at least one profile, got %d", d.Profiles)
	}
	if batch < 1 {
		batch = 10000
	}
	g := gen.New(d.gen())
	ps := make([]Profile, 0, min(batch, d.Profiles))
	for i, m := range g.EachIdentify { // one batch in memory at a time
		id := m.UserID
		if id == "" {
			id = m.AnonymousID
		}
		ps = append(ps, Profile{Num: uint32(i), ID: id, Traits: m.Traits})
		if len(ps) == batch || i == d.Profiles-1 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if err := s.Profiles(ctx, ps); err != nil {
				return 0, err
			}
			ps = ps[:0]
		}
	}
	es := make([]Event, 0, batch)
	var patches []Patch
	n := 0
	flush := func() error {
		if len(es) == 0 && len(patches) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.Events(ctx, es, patches)
		es, patches = es[:0], patches[:0]
		return err
	}
	for m := g.Next(); m != nil; m = g.Next() {
		switch m.Type {
		case model.Track:
			num, err := profileNum(m.UserID, m.AnonymousID)
			if err != nil {
				return 0, err
			}
			es = append(es, Event{Num: num, Name: m.Event, Time: m.Timestamp, Props: m.Properties})
			n++
		case model.Identify:
			num, err := profileNum(m.UserID, m.AnonymousID)
			if err != nil {
				return 0, err
			}
			patches = append(patches, Patch{Num: num, ID: m.UserID, Traits: m.Traits})
		case model.Alias:
			// Links the anonymous id to the same profile: nothing changes.
		default:
			return 0, fmt.Errorf("generator produced an unexpected %v message", m.Type)
		}
		if len(es) == batch {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return n, nil
}

// profileNum maps a generated id ("user-17" or "anon-17") to its
// profile's number (17).
func profileNum(ids ...string) (uint32, error) {
	for _, id := range ids {
		if id == "" {
			continue
		}
		_, digits, ok := strings.Cut(id, "-")
		if !ok {
			break
		}
		n, err := strconv.ParseUint(digits, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("generated id %q: %w", id, err)
		}
		return uint32(n), nil
	}
	return 0, fmt.Errorf("generated message has no usable id (%q)", ids)
}

// WalkAhead is Walk with the generation on a goroutine of its own, up to
// two batches ahead of s, which runs on the caller's: generating costs
// about as much as applying, so a load on two cores takes about half
// the time. s sees the same batches in the same order.
func (d Data) WalkAhead(ctx context.Context, batch int, s Sink) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type step struct {
		ps      []Profile
		es      []Event
		patches []Patch
	}
	steps := make(chan step, 2)
	var n int
	var walkErr error
	go func() {
		defer close(steps)
		send := func(st step) error {
			select {
			case steps <- st:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n, walkErr = d.Walk(ctx, batch, Sink{
			Profiles: func(_ context.Context, ps []Profile) error { return send(step{ps: slices.Clone(ps)}) },
			Events: func(_ context.Context, es []Event, patches []Patch) error {
				return send(step{es: slices.Clone(es), patches: slices.Clone(patches)})
			},
		})
	}()
	var err error
	for st := range steps {
		if err != nil {
			continue // drain: the walk stops at its next send
		}
		if st.ps != nil {
			err = s.Profiles(ctx, st.ps)
		} else {
			err = s.Events(ctx, st.es, st.patches)
		}
		if err != nil {
			cancel()
		}
	}
	if err != nil {
		return 0, err
	}
	return n, walkErr
}
