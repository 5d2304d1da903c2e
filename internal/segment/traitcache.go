package segment

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/store"
)

// traitCacheSize bounds the profiles whose traits the applier keeps
// decoded (about half a kilobyte each with typical traits).
const traitCacheSize = 1 << 17

// traitCache holds the decoded traits of recently re-evaluated profiles,
// so that an event for a known profile does not read and decode its
// profile record again: that read was the largest part of the applier's
// time under event traffic. It is used only from the applier goroutine
// (OnApply and timer firing) and kept current by OnApply from every
// commit's profile changes, which are the only way traits change.
type traitCache map[uint32]map[string]any

// update records a commit's profile changes: new traits, or removal.
func (c *traitCache) update(num uint32, newID string, traits map[string]any) {
	if *c == nil {
		return
	}
	if newID == "" {
		delete(*c, num)
		return
	}
	(*c)[num] = traits
}

// get returns a live root's traits from the cache or the store.
func (c *traitCache) get(r pebble.Reader, ws, root uint32) (map[string]any, bool, error) {
	if t, ok := (*c)[root]; ok {
		return t, true, nil
	}
	p, found, err := store.ReadProfile(r, ws, root)
	if err != nil || !found {
		return nil, found, err
	}
	if *c == nil {
		*c = make(traitCache)
	}
	if len(*c) >= traitCacheSize {
		// Drop an arbitrary eighth (map order is unspecified).
		n := traitCacheSize / 8
		for k := range *c {
			delete(*c, k)
			if n--; n == 0 {
				break
			}
		}
	}
	(*c)[root] = p.Traits
	return p.Traits, true, nil
}
