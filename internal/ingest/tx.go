package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// tx is one workspace's share of a commit group. Profiles read or changed
// in the group are cached and written once, at flush.
type tx struct {
	g   *Ingester
	b   *pebble.Batch
	w   *Workspace
	now time.Time

	profiles map[uint32]*cached
	changes  Changes
	added    map[string]struct{} // messageIds accepted in this group (dedup.go)
	origin   string              // the origin of the item being applied (a source's record)

	accepted, duplicates, rejected int
}

type cached struct {
	rec     *store.ProfileRecord
	dirty   bool
	deleted bool
	// What the profile was when the group first touched it (nil when the
	// group created it), for the change feed.
	origTraits map[string]any
	origID     string
	existed    bool
}

func newTx(g *Ingester, b *pebble.Batch, w *Workspace) *tx {
	return &tx{g: g, b: b, w: w, now: g.now().UTC(), profiles: map[uint32]*cached{}, added: map[string]struct{}{}}
}

func (t *tx) run(j *job) error {
	if err := t.runJob(j); err != nil {
		return err
	}
	for _, w := range j.writes {
		if err := t.b.Set(w.Key, w.Value, nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) runJob(j *job) error {
	switch j.kind {
	case jobRefusal:
		t.rejected++
		return t.deadLetter(j.refusal)
	case jobDeleteUser:
		found, err := t.deleteUser(j.userID)
		j.found = found
		return err
	case jobExpireBots:
		return t.expireBots()
	case jobRun:
		// What this group changed so far is written and published first,
		// so fn sees it in the batch and in every index.
		if err := t.publish(); err != nil {
			return err
		}
		return j.run(t.b)
	}
	stored, err := t.storedIDs(j.items)
	if err != nil {
		return err
	}
	for i, it := range j.items {
		reason := it.Err
		if reason == nil {
			if t.seen(stored, i, it.Msg.MessageID) {
				t.duplicates++
				j.res.Duplicates++
				continue
			}
			t.origin = it.Origin
			var err error
			reason, err = t.apply(it.Msg)
			t.origin = ""
			if err != nil {
				return err
			}
		}
		if reason != nil {
			t.rejected++
			j.res.Rejected = append(j.res.Rejected, Rejected{Index: it.Index, MessageID: it.MessageID, Error: reason.Error()})
			src := j.source
			if it.Origin != "" {
				src = it.Origin
			}
			r := store.Rejection{Source: src, Index: it.Index, MessageID: it.MessageID, Error: reason.Error()}
			if json.Valid(it.Raw) {
				r.Message = it.Raw
			} else {
				r.Body = string(it.Raw)
			}
			if err := t.deadLetter(r); err != nil {
				return err
			}
			continue
		}
		t.accepted++
		j.res.Accepted++
	}
	return nil
}

func (t *tx) deadLetter(r store.Rejection) error {
	t.w.counters.RejectSeq++
	r.Seq = t.w.counters.RejectSeq
	r.ReceivedAt = t.now
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rejection: %w", err)
	}
	return t.b.Set(store.RejectKey(t.w.Num, r.Seq), v, nil)
}

// apply applies one valid message. It returns a rejection reason when a
// workspace limit refuses the message (nothing of it is then written), and
// an error only when the store fails.
func (t *tx) apply(m *model.Message) (reason, err error) {
	lim := t.g.opts.Limits
	if m.IsEvent() {
		if _, known := t.w.EventNameID(m.Event); !known && t.w.numEventNames() >= lim.MaxEventNames {
			return fmt.Errorf("event %q would be distinct event name %d of the workspace, over its limit of %d (is an id being sent as the event name?)",
				m.Event, t.w.numEventNames()+1, lim.MaxEventNames), nil
		}
		if len(m.Properties) > lim.MaxProperties {
			return fmt.Errorf("event %q has %d properties, over the limit of %d", m.Event, len(m.Properties), lim.MaxProperties), nil
		}
	}
	if len(m.Traits) > 0 {
		n, err := t.traitsAfter(m)
		if err != nil {
			return nil, err
		}
		if n > lim.MaxTraits {
			return fmt.Errorf("profile would have %d traits, over the limit of %d", n, lim.MaxTraits), nil
		}
	}
	num, err := t.resolve(m)
	if err != nil {
		return nil, err
	}
	if t.origin != "" {
		if t.changes.Origins == nil {
			t.changes.Origins = map[uint32]string{}
		}
		t.changes.Origins[num] = t.origin
	}
	if r := t.changes.ReceivedAt; r.IsZero() || m.ReceivedAt.Before(r) {
		t.changes.ReceivedAt = m.ReceivedAt
	}
	if len(m.Traits) > 0 || len(m.Unset) > 0 {
		c, err := t.profile(num)
		if err != nil {
			return nil, err
		}
		// A message that repeats the traits the profile has (SDKs send
		// every identify in full) writes nothing and changes no segment.
		changed := false
		for _, k := range m.Unset {
			if _, ok := c.rec.Traits[k]; ok {
				delete(c.rec.Traits, k)
				changed = true
			}
		}
		for k, v := range m.Traits {
			if old, ok := c.rec.Traits[k]; !ok || !reflect.DeepEqual(old, v) {
				c.rec.Traits[k] = v
				changed = true
			}
		}
		if changed {
			c.rec.UpdatedAt = t.now
			c.dirty = true
		}
		t.w.Schema.ObserveTraits(m.Traits)
	}
	if m.IsEvent() {
		if err := t.writeEvent(num, m); err != nil {
			return nil, err
		}
		if err := t.countBot(num); err != nil {
			return nil, err
		}
	}
	if m.MessageID != "" {
		if err := t.b.Set(store.MsgIDKey(t.w.Num, m.MessageID), store.U32(store.Day(m.ReceivedAt)), nil); err != nil {
			return nil, err
		}
		t.added[m.MessageID] = struct{}{}
	}
	return nil, nil
}

func (t *tx) writeEvent(num uint32, m *model.Message) error {
	id, ok := t.w.EventNameID(m.Event)
	if !ok {
		id = t.w.counters.NextNameID
		t.w.counters.NextNameID++
		t.w.namesMu.Lock()
		t.w.names[m.Event] = id
		t.w.namesMu.Unlock()
		if err := t.b.Set(store.EventNameKey(t.w.Num, m.Event), store.U32(id), nil); err != nil {
			return err
		}
	}
	props := m.PropertiesJSON
	if props == nil && len(m.Properties) > 0 {
		var err error
		if props, err = json.Marshal(m.Properties); err != nil {
			return fmt.Errorf("encode properties: %w", err)
		}
	}
	t.w.counters.EventSeq++
	seq := t.w.counters.EventSeq
	day := store.Day(m.Timestamp)
	if err := t.b.Set(store.EventKey(t.w.Num, day, num, m.Timestamp, seq), store.EncodeEvent(m.Event, m.MessageID, props), nil); err != nil {
		return err
	}
	t.w.Schema.ObserveEvent(m.Event, m.Properties)
	t.changes.Events = append(t.changes.Events, EventAdded{Num: num, Seq: seq, Name: m.Event, Timestamp: m.Timestamp, Properties: m.Properties})
	return nil
}

// traitsAfter counts the traits the message's profile would have after it
// is applied, counting every profile the message could merge.
func (t *tx) traitsAfter(m *model.Message) (int, error) {
	keys := map[string]struct{}{}
	for k := range m.Traits {
		keys[k] = struct{}{}
	}
	for _, id := range []string{m.UserID, m.AnonymousID, m.PreviousID} {
		if id == "" {
			continue
		}
		n, ok, err := t.lookup(id)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		c, err := t.profile(n)
		if err != nil {
			return 0, err
		}
		for k := range c.rec.Traits {
			keys[k] = struct{}{}
		}
	}
	return len(keys), nil
}

// lookup resolves an id to its root profile number.
func (t *tx) lookup(id string) (uint32, bool, error) {
	n, ok := t.w.ids.Get(id)
	return n, ok, nil
}

func (t *tx) profile(n uint32) (*cached, error) {
	if c, ok := t.profiles[n]; ok && !c.deleted {
		return c, nil
	}
	rec, ok, err := store.ReadProfile(t.b, t.w.Num, n)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("profile %d of workspace %q is linked but missing: %w", n, t.w.Name, store.ErrCorruption)
	}
	c := &cached{rec: rec, origTraits: maps.Clone(rec.Traits), origID: rec.ID, existed: true}
	t.profiles[n] = c
	return c, nil
}

func (t *tx) link(id string, n uint32) error {
	t.w.ids.Set(id, n)
	return t.b.Set(store.IDKey(t.w.Num, id), store.U32(n), nil)
}

// create makes a new profile whose canonical id is id.
func (t *tx) create(id string, isUser bool) (uint32, error) {
	n := t.w.counters.NextProfile
	t.w.counters.NextProfile++
	rec := &store.ProfileRecord{ID: id, IDs: []string{id}, Traits: map[string]any{}, CreatedAt: t.now, UpdatedAt: t.now}
	if isUser {
		rec.UserID = id
	}
	t.profiles[n] = &cached{rec: rec, dirty: true}
	return n, t.link(id, n)
}

// addID links one more id to profile n.
func (t *tx) addID(n uint32, id string) error {
	c, err := t.profile(n)
	if err != nil {
		return err
	}
	if !slices.Contains(c.rec.IDs, id) {
		c.rec.IDs = append(c.rec.IDs, id)
		c.dirty = true
	}
	return t.link(id, n)
}

// identify gives an anonymous profile its userId, which becomes canonical.
func (t *tx) identify(n uint32, userID string) error {
	c, err := t.profile(n)
	if err != nil {
		return err
	}
	c.rec.UserID, c.rec.ID = userID, userID
	c.rec.IDs = append([]string{userID}, slices.DeleteFunc(c.rec.IDs, func(s string) bool { return s == userID })...)
	c.dirty = true
	return t.link(userID, n)
}

// merge folds profile src into dst: ids and events are combined, traits
// only src had are copied, dst's own values win.
func (t *tx) merge(src, dst uint32) error {
	s, err := t.profile(src)
	if err != nil {
		return err
	}
	d, err := t.profile(dst)
	if err != nil {
		return err
	}
	for _, id := range s.rec.IDs {
		if !slices.Contains(d.rec.IDs, id) {
			d.rec.IDs = append(d.rec.IDs, id)
		}
		if err := t.link(id, dst); err != nil {
			return err
		}
	}
	for k, v := range s.rec.Traits {
		if _, ok := d.rec.Traits[k]; !ok {
			d.rec.Traits[k] = v
		}
	}
	d.rec.UpdatedAt = t.now
	d.dirty = true
	s.deleted = true
	t.changes.Merges = append(t.changes.Merges, Merge{Src: src, Dst: dst})
	t.w.parentMu.Lock()
	t.w.parent[src] = dst
	t.w.parentMu.Unlock()
	if err := t.b.Set(store.LinkKey(t.w.Num, src), store.U32(dst), nil); err != nil {
		return err
	}
	return t.b.Delete(store.ProfileKey(t.w.Num, src), nil)
}

// resolve finds (creating, linking or merging as the contract says) the
// profile a message belongs to.
func (t *tx) resolve(m *model.Message) (uint32, error) {
	switch {
	case m.Type == model.Alias:
		return t.alias(m.PreviousID, m.UserID)
	case m.UserID != "" && m.AnonymousID != "":
		return t.linkPair(m.UserID, m.AnonymousID)
	case m.UserID != "":
		return t.ensure(m.UserID, true)
	default:
		return t.ensure(m.AnonymousID, false)
	}
}

func (t *tx) ensure(id string, isUser bool) (uint32, error) {
	n, ok, err := t.lookup(id)
	if err != nil || ok {
		return n, err
	}
	return t.create(id, isUser)
}

// linkPair handles a message carrying both a userId and an anonymousId.
// An anonymous profile joins the user's; an anonymousId already tied to a
// different user stays with that user (a shared device must not merge two
// people), and the message goes to the userId's profile.
func (t *tx) linkPair(userID, anonID string) (uint32, error) {
	nu, okU, err := t.lookup(userID)
	if err != nil {
		return 0, err
	}
	na, okA, err := t.lookup(anonID)
	if err != nil {
		return 0, err
	}
	switch {
	case okU && okA && nu == na:
		return nu, nil
	case okU && !okA:
		return nu, t.addID(nu, anonID)
	case !okU && !okA:
		n, err := t.create(userID, true)
		if err != nil {
			return 0, err
		}
		return n, t.addID(n, anonID)
	}
	a, err := t.profile(na)
	if err != nil {
		return 0, err
	}
	anonymous := a.rec.UserID == ""
	switch {
	case !okU && anonymous:
		return na, t.identify(na, userID)
	case !okU:
		return t.create(userID, true)
	case anonymous:
		return nu, t.merge(na, nu)
	default:
		return nu, nil
	}
}

// alias links previousId to userId: the two profiles merge into the
// userId's, whatever they were.
func (t *tx) alias(prevID, userID string) (uint32, error) {
	np, okP, err := t.lookup(prevID)
	if err != nil {
		return 0, err
	}
	nu, okU, err := t.lookup(userID)
	if err != nil {
		return 0, err
	}
	switch {
	case okP && okU && np == nu:
		return nu, nil
	case okP && okU:
		return nu, t.merge(np, nu)
	case okP:
		return np, t.identify(np, userID)
	case okU:
		return nu, t.addID(nu, prevID)
	}
	n, err := t.create(userID, true)
	if err != nil {
		return 0, err
	}
	return n, t.addID(n, prevID)
}

func (t *tx) deleteUser(id string) (bool, error) {
	n, ok, err := t.lookup(id)
	if err != nil || !ok {
		return false, err
	}
	c, err := t.profile(n)
	if err != nil {
		return false, err
	}
	nums := t.g.ProfileNums(t.w, n)
	for _, num := range nums {
		t.w.namesMu.RLock()
		names := maps.Clone(t.w.names)
		t.w.namesMu.RUnlock()
		if err := store.DeleteProfileEvents(context.Background(), t.b, t.w.Num, num, names); err != nil {
			return false, err
		}
		if num != n {
			t.w.parentMu.Lock()
			delete(t.w.parent, num)
			t.w.parentMu.Unlock()
			if err := t.b.Delete(store.LinkKey(t.w.Num, num), nil); err != nil {
				return false, err
			}
		}
	}
	for _, linked := range c.rec.IDs {
		t.w.ids.Delete(linked)
		if err := t.b.Delete(store.IDKey(t.w.Num, linked), nil); err != nil {
			return false, err
		}
	}
	c.deleted = true
	for _, num := range nums {
		if _, ok := t.w.bots.flagged[num]; ok {
			delete(t.w.bots.flagged, num)
			if err := t.b.Delete(store.BotKey(t.w.Num, num), nil); err != nil {
				return false, err
			}
		}
	}
	t.changes.Deleted = append(t.changes.Deleted, nums...)
	return true, t.b.Delete(store.ProfileKey(t.w.Num, n), nil)
}

// flush writes every changed profile and completes the change feed.
func (t *tx) flush() error {
	for n, c := range t.profiles {
		switch {
		case c.deleted:
			if c.existed {
				t.changes.Profiles = append(t.changes.Profiles, ProfileChange{Num: n, OldID: c.origID, Old: c.origTraits})
				c.existed = false // reported once
			}
			continue
		case !c.dirty:
			continue
		}
		if err := t.b.Set(store.ProfileKey(t.w.Num, n), store.EncodeProfile(c.rec), nil); err != nil {
			return err
		}
		c.dirty = false
		pc := ProfileChange{Num: n, NewID: c.rec.ID, New: maps.Clone(c.rec.Traits)}
		if c.existed {
			pc.OldID, pc.Old = c.origID, c.origTraits
		}
		t.changes.Profiles = append(t.changes.Profiles, pc)
		// A later flush in the same group reports from here.
		c.origTraits, c.origID, c.existed = pc.New, pc.NewID, true
	}
	slices.SortFunc(t.changes.Profiles, func(a, b ProfileChange) int { return int(a.Num) - int(b.Num) })
	return nil
}

// publish writes the changed profiles and hands the changes so far to
// both listeners in the group's own batch, then starts a fresh change
// list. A Run job in the middle of a group uses it, so fn sees what the
// group did so far.
func (t *tx) publish() error {
	if err := t.record(); err != nil {
		return err
	}
	if err := t.applied(t.b); err != nil {
		return err
	}
	t.changes = Changes{}
	return nil
}

// record writes the changed profiles and hands the changes so far to the
// OnRecord listener, whose writes commit with the messages.
func (t *tx) record() error {
	if err := t.flush(); err != nil {
		return err
	}
	if t.g.opts.OnRecord != nil && !t.changes.empty() {
		if err := t.g.opts.OnRecord(t.w, &t.changes, t.b); err != nil {
			return fmt.Errorf("record changes of workspace %q: %w", t.w.Name, err)
		}
	}
	return nil
}

// applied hands the recorded changes to the OnApply listener, writing to b.
func (t *tx) applied(b *pebble.Batch) error {
	if t.g.opts.OnApply != nil && !t.changes.empty() {
		if err := t.g.opts.OnApply(t.w, &t.changes, b); err != nil {
			return fmt.Errorf("apply changes of workspace %q: %w", t.w.Name, err)
		}
	}
	return nil
}
