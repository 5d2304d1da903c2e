package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/cohortdb/cohort/internal/store"
)

// BotTrait is the trait the ingestion path sets on a profile whose event
// rate marks it as a bot; conditions can exclude such profiles with
// {"not": {"trait": "$bot", "op": "eq", "value": true}}.
const BotTrait = "$bot"

// BotQuiet is how long a flagged profile must stay under the threshold
// before its flag is lifted (checked by ExpireBots, run with the hourly
// retention sweep).
const BotQuiet = 24 * time.Hour

// bots counts each profile's events per clock minute and remembers the
// flagged ones. It is owned by the applier goroutine. Its memory is
// bounded: counts hold only the profiles active in the current minute,
// flagged only the profiles flagged within the last BotQuiet.
type bots struct {
	minute  int64            // the clock minute counts are for
	counts  map[uint32]int32 // root → events in that minute
	flagged map[uint32]int64 // flagged root → last minute over the threshold (stored as B ws num)
}

func (b *bots) init() {
	b.counts = map[uint32]int32{}
	b.flagged = map[uint32]int64{}
}

// countBot counts one event of root; past the workspace's threshold in a
// minute, the profile gets the trait "$bot": true through the group's
// profile cache (so no later write of the group can lose it) and its flag
// is stored with the minute.
func (t *tx) countBot(root uint32) error {
	limit := t.g.opts.Limits.BotEventsPerMinute
	if limit <= 0 {
		return nil
	}
	b := &t.w.bots
	minute := t.now.Unix() / 60
	if minute != b.minute {
		b.minute = minute
		clear(b.counts)
	}
	b.counts[root]++
	if int(b.counts[root]) <= limit {
		return nil
	}
	if last, ok := b.flagged[root]; ok && last == minute {
		return nil
	}
	_, was := b.flagged[root]
	b.flagged[root] = minute
	if err := t.b.Set(store.BotKey(t.w.Num, root), store.U32(uint32(minute)), nil); err != nil {
		return err
	}
	c, err := t.profile(root)
	if err != nil {
		return err
	}
	if c.rec.Traits[BotTrait] != true {
		c.rec.Traits[BotTrait] = true
		c.dirty = true
		t.w.Schema.ObserveTraits(map[string]any{BotTrait: true})
	}
	if !was {
		t.g.m.bots.Inc()
		t.g.log.Warn("profile flagged as a bot", "workspace", t.w.Name, "user", c.rec.ID, "events_per_minute_over", limit)
	}
	return nil
}

// expireBots lifts the flag of every profile that has not been over the
// threshold for BotQuiet: its "$bot" trait is removed (the change feed
// re-evaluates its segments, reason "trait").
func (t *tx) expireBots() error {
	b := &t.w.bots
	horizon := t.now.Add(-BotQuiet).Unix() / 60
	for root, last := range b.flagged {
		if last >= horizon {
			continue
		}
		delete(b.flagged, root)
		if err := t.b.Delete(store.BotKey(t.w.Num, root), nil); err != nil {
			return err
		}
		if t.w.find(root) != root {
			continue // merged away since
		}
		rec, ok, err := store.ReadProfile(t.b, t.w.Num, root)
		if err != nil {
			return err
		}
		if !ok || rec.Traits[BotTrait] == nil {
			continue // deleted, or the trait was changed by a client
		}
		c, err := t.profile(root)
		if err != nil {
			return err
		}
		delete(c.rec.Traits, BotTrait)
		c.rec.UpdatedAt = t.now
		c.dirty = true
	}
	return nil
}

// ExpireBots lifts the flags of profiles quiet for BotQuiet, in the
// applier's order.
func (g *Ingester) ExpireBots(ctx context.Context, ws *Workspace) error {
	return g.submit(ctx, &job{kind: jobExpireBots, ws: ws})
}

func loadBots(st *store.Store, w *Workspace) error {
	w.bots.init()
	err := store.ScanBots(st.DB(), w.Num, func(num, minute uint32) error {
		w.bots.flagged[num] = int64(minute)
		return nil
	})
	if err != nil {
		return fmt.Errorf("workspace %q bot flags: %w", w.Name, err)
	}
	return nil
}
