package demo

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/model"
)

// EventsPerProfile is how many events a data set has per profile unless
// Config.Events says otherwise.
const EventsPerProfile = 20

// BotBurst is how many events a bot-like user sends within one minute when
// the data set is large enough (at least 10 bursts' worth of events): more
// than the server's default limits.bot_events_per_minute (1200).
const BotBurst = 1300

// Config sizes and places a data set.
type Config struct {
	Seed     uint64
	Profiles int
	// Events is the number of event messages (tracks, pages and the bots'
	// bursts); 0 means EventsPerProfile per profile.
	Events int
	// Now is the end of the period the events fall in; Days its length.
	Now  time.Time
	Days int
}

// Validate reports what is wrong with c, every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Profiles < 1 {
		errs = append(errs, fmt.Errorf("profiles: %d, want at least 1", c.Profiles))
	}
	if c.Events < 0 {
		errs = append(errs, fmt.Errorf("events: %d must not be negative", c.Events))
	}
	if c.Days < 1 {
		errs = append(errs, fmt.Errorf("days: %d, want at least 1", c.Days))
	}
	if c.Now.IsZero() {
		errs = append(errs, errors.New("now: not set"))
	}
	return errors.Join(errs...)
}

func (c Config) events() int {
	if c.Events == 0 {
		return EventsPerProfile * c.Profiles
	}
	return c.Events
}

// Stats says what a data set holds.
type Stats struct {
	Lines      int // NDJSON lines written
	Identifies int
	Aliases    int
	Events     int // tracks and pages, bots' included
	Bots       int // bot-like users
	// Bad is the number of lines written to be rejected: a track without
	// an event name, a message without userId and anonymousId, a line
	// that is not JSON. An import reports exactly these as rejected.
	Bad      int
	Profiles int // CSV rows, with WriteCSV
}

// badEvery is how often (in messages) a deliberately bad line is written;
// every data set has at least len(badLines) of them.
const badEvery = 5000

// WriteNDJSON writes the data set's messages to w, one per line.
func WriteNDJSON(w io.Writer, cfg Config) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	e := &encoder{w: bw, cfg: cfg, prefix: "s" + strconv.FormatUint(cfg.Seed, 10) + "-"}
	total := cfg.events()
	bots, burst := 0, 0
	if total >= 10*BotBurst {
		bots, burst = max(1, cfg.Profiles/2000), BotBurst
		bots = min(bots, total/(10*BotBurst))
	} else if total >= 100 {
		bots, burst = 1, total/10
	}
	g := gen.New(gen.Config{Seed: cfg.Seed, Profiles: cfg.Profiles, Events: total - bots*burst,
		Now: cfg.Now, Days: cfg.Days, InOrder: true})
	start := cfg.Now.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	for i, m := range g.Identifies() {
		m.Timestamp = start.Add(time.Duration(i) * time.Millisecond)
		e.message(m)
	}
	// The bots start their bursts at even shares of the stream.
	r := rand.New(rand.NewPCG(cfg.Seed, 0xb07))
	nextBot, botAt := 0, 0
	if bots > 0 {
		botAt = (total - bots*burst) / (bots + 1)
	}
	n := 0
	for m := g.Next(); m != nil; m = g.Next() {
		for nextBot < bots && n >= botAt*(nextBot+1) {
			e.bot(nextBot, burst, m.Timestamp, r)
			nextBot++
		}
		if m.Type == model.Track && m.Event == "Page Viewed" && n%4 == 0 {
			// Some page views come as page calls, named.
			m.Type, m.Event = model.Page, ""
			m.Properties["name"] = pageNames[n%len(pageNames)]
		}
		e.message(m)
		n++
	}
	for ; nextBot < bots; nextBot++ {
		e.bot(nextBot, burst, cfg.Now.Add(-time.Hour), r)
	}
	for e.st.Bad < len(badLines) {
		e.bad()
	}
	e.st.Bots = bots
	if e.err == nil {
		e.err = bw.Flush()
	}
	return e.st, e.err
}

var pageNames = []string{"Home", "Product", "Category", "Cart"}

// badLines are the deliberately bad lines, in turn: the import and the
// server reject each, and keep it in the dead-letter log.
var badLines = []func(id string) string{
	func(id string) string { // a track without an event name
		return `{"type":"track","userId":"user-1","messageId":"` + id + `","properties":{"price":9.99}}`
	},
	func(id string) string { // neither userId nor anonymousId
		return `{"type":"identify","messageId":"` + id + `","traits":{"plan":"pro"}}`
	},
	func(id string) string { // cut short: not JSON
		return `{"type":"track","userId":"user-2","messageId":"` + id + `","event":"Order Comp`
	},
}

// encoder writes messages as Segment JSON lines.
type encoder struct {
	w      *bufio.Writer
	cfg    Config
	prefix string // of every messageId: data sets of other seeds never collide
	st     Stats
	err    error
}

// segmentJSON is a Segment message as an SDK sends it.
type segmentJSON struct {
	Type        string         `json:"type"`
	MessageID   string         `json:"messageId"`
	UserID      string         `json:"userId,omitempty"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	PreviousID  string         `json:"previousId,omitempty"`
	Event       string         `json:"event,omitempty"`
	Name        string         `json:"name,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Properties  map[string]any `json:"properties,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
}

func (e *encoder) message(m *model.Message) {
	if e.err != nil {
		return
	}
	s := segmentJSON{Type: string(m.Type), MessageID: e.prefix + m.MessageID, UserID: m.UserID,
		AnonymousID: m.AnonymousID, PreviousID: m.PreviousID, Event: m.Event,
		Traits: m.Traits, Properties: m.Properties}
	if !m.Timestamp.IsZero() {
		s.Timestamp = m.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	switch m.Type {
	case model.Identify:
		e.st.Identifies++
	case model.Alias:
		e.st.Aliases++
	case model.Page:
		s.Name, _ = m.Properties["name"].(string)
		delete(m.Properties, "name")
		e.st.Events++
	default:
		e.st.Events++
	}
	e.line(s)
	if e.st.Lines%badEvery == badEvery-1 {
		e.bad()
	}
}

func (e *encoder) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.err = fmt.Errorf("encode message: %w", err)
		return
	}
	e.write(string(b))
}

func (e *encoder) write(s string) {
	if e.err != nil {
		return
	}
	if _, err := e.w.WriteString(s + "\n"); err != nil {
		e.err = fmt.Errorf("write: %w", err)
	}
	e.st.Lines++
}

func (e *encoder) bad() {
	k := e.st.Bad
	e.st.Bad++
	e.write(badLines[k%len(badLines)](e.prefix + "bad-" + strconv.Itoa(k)))
}

// bot writes bot b's burst: n page views, all within the minute after at,
// from one user agent, none of them a human's pace.
func (e *encoder) bot(b, n int, at time.Time, r *rand.Rand) {
	id := "bot-" + strconv.Itoa(b)
	ctx := map[string]any{"userAgent": "Mozilla/5.0 (compatible; ScrapeBot/2.1)", "ip": "203.0.113." + strconv.Itoa(10+b)}
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Minute / time.Duration(max(n, 1)))
		e.line(segmentJSON{Type: "track", MessageID: fmt.Sprintf("%s%s-%d", e.prefix, id, i), UserID: id,
			Event: "Page Viewed", Properties: map[string]any{"path": "/p/" + strconv.Itoa(r.IntN(1000))},
			Timestamp: ts.UTC().Format(time.RFC3339Nano), Context: ctx})
		e.st.Events++
	}
}

// csvColumns are the CSV profiles' columns; the first is the id column
// `cohort import` reads by default.
var csvColumns = []string{"userId", "email", "country", "birthday", "newsletter", "lifetime_orders", "loyalty_tier"}

var (
	countries = []string{"GB", "FR", "DE", "IN", "US", "JP", "BR", "NG", "AU"}
	tiers     = []string{"bronze", "silver", "gold", ""}
)

// WriteCSV writes the data set's CSV profiles to w: two profiles in three,
// by userId, with the traits a CRM export has (text, numbers, booleans, a
// date, empty cells).
func WriteCSV(w io.Writer, cfg Config) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0xc5f))
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return Stats{}, fmt.Errorf("write: %w", err)
	}
	var st Stats
	for i := range cfg.Profiles {
		if i%3 == 2 {
			continue
		}
		birthday := time.Date(1950+r.IntN(55), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC)
		row := []string{
			gen.UserID(i),
			fmt.Sprintf("user%d@example.com", i),
			countries[r.IntN(len(countries))],
			birthday.Format(time.DateOnly),
			strconv.FormatBool(r.IntN(3) == 0),
			strconv.Itoa(r.IntN(40)),
			tiers[r.IntN(len(tiers))],
		}
		if err := cw.Write(row); err != nil {
			return st, fmt.Errorf("write: %w", err)
		}
		st.Profiles++
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return st, fmt.Errorf("write: %w", err)
	}
	return st, nil
}
