// Package gen generates deterministic, realistic Segment traffic for tests
// and benchmarks: profiles with traits (with some type conflicts),
// anonymous visitors who later identify, aliases, and events whose names
// and property values follow Zipf distributions with a long tail of rare
// events. The same seed always gives the same messages.
package gen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// Config sizes a data set.
type Config struct {
	Seed     uint64
	Profiles int
	Events   int
	// Now is the end of the generated period; events spread over Days
	// before it.
	Now  time.Time
	Days int
	// InOrder makes events arrive in timestamp order, each up to an hour
	// late, as a live stream does: event i of Events is stamped at its
	// share of the period, less a random lateness (one event in eight is
	// then truncated to the hour, in either order). Otherwise timestamps
	// are uniform over the period in random order (every event arrives
	// out of order, the worst case for time-bounded storage).
	InOrder bool
}

// Vocabulary the generator draws from (tests build conditions from it).
var (
	EventNames = []string{"Page Viewed", "Product Viewed", "Added To Cart", "Song Played", "App Opened",
		"Order Completed", "Search", "Signed Up", "Checkout Started", "Removed From Cart",
		"Video Watched", "Subscription Renewed"}
	Categories = []string{"Electronics", "Books", "Clothing", "Home", "Toys", "Garden", "Sports", "Beauty"}
	Genres     = []string{"Pop", "Rock", "K-Pop", "Jazz", "Hip Hop", "Classical", "pop punk", "Electronic"}
	Cities     = []string{"London", "Paris", "Berlin", "Mumbai", "New York", "london", "Tokyo", "São Paulo", "Lagos", "Sydney"}
	Plans      = []string{"free", "pro", "enterprise", "trial"}
)

// Generator yields messages.
type Generator struct {
	cfg  Config
	r    *rand.Rand
	zEv  *rand.Zipf
	zCat *rand.Zipf
	zUsr *rand.Zipf
	i    int
	anon map[int]bool // profile index → still anonymous
}

// New returns a generator.
func New(cfg Config) *Generator {
	if cfg.Days <= 0 {
		cfg.Days = 30
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	}
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg, r: r, anon: map[int]bool{}}
	g.zEv = rand.NewZipf(r, 1.3, 2, uint64(len(EventNames)-1))
	g.zCat = rand.NewZipf(r, 1.2, 1, uint64(len(Categories)-1))
	g.zUsr = rand.NewZipf(r, 1.1, 10, uint64(max(cfg.Profiles-1, 1)))
	return g
}

// UserID is the userId of profile i; AnonID its anonymous id.
func UserID(i int) string { return fmt.Sprintf("user-%d", i) }

// AnonID is the anonymous id profile i browses with before identifying.
func AnonID(i int) string { return fmt.Sprintf("anon-%d", i) }

// Identifies returns one identify message per profile, with traits.
func (g *Generator) Identifies() []*model.Message {
	out := make([]*model.Message, 0, g.cfg.Profiles)
	for _, m := range g.EachIdentify {
		out = append(out, m)
	}
	return out
}

// EachIdentify yields Identifies' messages one at a time, profile index
// first (the same messages: at 40M profiles the slice would not fit in
// memory). Like Identifies, it is called once, before Next.
func (g *Generator) EachIdentify(yield func(int, *model.Message) bool) {
	for i := range g.cfg.Profiles {
		traits := map[string]any{
			"plan": Plans[g.r.IntN(len(Plans))],
			"city": Cities[g.r.IntN(len(Cities))],
		}
		switch g.r.IntN(20) {
		case 0:
			traits["age"] = fmt.Sprintf("%d", 18+g.r.IntN(60)) // a type conflict
		case 1: // no age
		default:
			traits["age"] = float64(18 + g.r.IntN(60))
		}
		if g.r.IntN(3) > 0 {
			traits["ltv"] = float64(g.r.IntN(100000)) / 100
		}
		if g.r.IntN(2) == 0 {
			traits["signed_up_at"] = g.cfg.Now.Add(-time.Duration(g.r.IntN(g.cfg.Days*2)) * 24 * time.Hour).Format(time.RFC3339)
		}
		if g.r.IntN(4) == 0 {
			traits["tags"] = []any{Genres[g.r.IntN(len(Genres))], Plans[g.r.IntN(len(Plans))]}
		}
		if g.r.IntN(5) == 0 {
			traits["address"] = map[string]any{"city": Cities[g.r.IntN(len(Cities))], "zip": float64(10000 + g.r.IntN(90000))}
		}
		if g.r.IntN(6) == 0 {
			traits["vip"] = g.r.IntN(2) == 0
		}
		if g.r.IntN(8) == 0 {
			traits["location"] = map[string]any{"lat": 51.5 + g.r.Float64()*2 - 1, "lon": -0.1 + g.r.Float64()*2 - 1}
		}
		m := &model.Message{Type: model.Identify, UserID: UserID(i), Traits: traits, MessageID: fmt.Sprintf("id-%d", i)}
		if g.r.IntN(5) == 0 {
			g.anon[i] = true
			m.UserID, m.AnonymousID = "", AnonID(i)
		}
		if !yield(i, m) {
			return
		}
	}
}

// Next returns the next event message (and sometimes an identify or an
// alias that links an anonymous visitor), or nil after Config.Events.
func (g *Generator) Next() *model.Message {
	if g.i >= g.cfg.Events {
		return nil
	}
	g.i++
	p := int(g.zUsr.Uint64())
	if g.r.IntN(2) == 0 {
		p = g.r.IntN(g.cfg.Profiles)
	}
	if g.anon[p] && g.r.IntN(40) == 0 {
		delete(g.anon, p)
		if g.r.IntN(2) == 0 {
			return &model.Message{Type: model.Alias, PreviousID: AnonID(p), UserID: UserID(p), MessageID: fmt.Sprintf("ev-%d", g.i)}
		}
		return &model.Message{Type: model.Identify, UserID: UserID(p), AnonymousID: AnonID(p),
			Traits: map[string]any{"identified": true}, MessageID: fmt.Sprintf("ev-%d", g.i)}
	}
	name := EventNames[g.zEv.Uint64()]
	if g.r.IntN(50) == 0 {
		name = fmt.Sprintf("Rare Event %d", g.r.IntN(40))
	}
	span := time.Duration(g.cfg.Days) * 24 * time.Hour
	var ts time.Time
	if g.cfg.InOrder {
		first := g.cfg.Now.Add(-span)
		arrival := first.Add(time.Duration(float64(span) * float64(g.i) / float64(g.cfg.Events)))
		ts = arrival.Add(-time.Duration(g.r.Int64N(int64(time.Hour)))).Truncate(time.Millisecond)
		if !ts.After(first) {
			ts = first.Add(time.Millisecond)
		}
	} else {
		ts = g.cfg.Now.Add(-time.Duration(g.r.Int64N(int64(span)))).Truncate(time.Millisecond)
	}
	if g.r.IntN(8) == 0 {
		ts = ts.Truncate(time.Hour) // on the edges of whole-hour windows
	}
	props := map[string]any{}
	switch name {
	case "Added To Cart", "Product Viewed", "Removed From Cart", "Order Completed", "Checkout Started":
		props["product_category"] = Categories[g.zCat.Uint64()]
		props["price"] = float64(g.r.IntN(50000)) / 100
		props["quantity"] = float64(1 + g.r.IntN(4))
		if g.r.IntN(30) == 0 {
			props["price"] = fmt.Sprintf("%d.99", g.r.IntN(100)) // a type conflict
		}
		props["product"] = map[string]any{"sku": fmt.Sprintf("sku-%d", g.r.IntN(200)), "brand": Categories[g.r.IntN(3)] + " Co"}
	case "Song Played":
		props["genre"] = Genres[g.r.IntN(len(Genres))]
		props["year"] = float64(2010 + g.r.IntN(10))
		props["duration"] = float64(60 + g.r.IntN(300))
	case "Search":
		props["query"] = fmt.Sprintf("%s %d", Categories[g.r.IntN(len(Categories))], g.r.IntN(10))
	case "Page Viewed":
		props["path"] = fmt.Sprintf("/p/%d", g.r.IntN(30))
		props["referrer"] = []string{"google", "direct", "newsletter"}[g.r.IntN(3)]
	}
	m := &model.Message{Type: model.Track, Event: name, Properties: props, Timestamp: ts, MessageID: fmt.Sprintf("ev-%d", g.i)}
	if g.anon[p] {
		m.AnonymousID = AnonID(p)
	} else {
		m.UserID = UserID(p)
	}
	return m
}
