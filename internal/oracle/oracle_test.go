package oracle_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
)

// now is the evaluation instant of every test.
var now = time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

func mustParse(t *testing.T, s string) *condition.Node {
	t.Helper()
	n, err := condition.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return n
}

// The semantic tables are shared with package condition, so that both
// implementations are held to the same expectations.
type semanticCase struct {
	Line   int
	Cond   json.RawMessage `json:"cond"`
	Value  json.RawMessage `json:"value"`
	Traits map[string]any  `json:"traits"`
	Events []struct {
		Name  string         `json:"name"`
		At    time.Time      `json:"at"`
		Props map[string]any `json:"props"`
	} `json:"events"`
	Want *bool `json:"want"`
}

func loadCases(t *testing.T, file string) []semanticCase {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []semanticCase
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var c semanticCase
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil || c.Want == nil || c.Cond == nil {
			t.Fatalf("%s:%d: bad case (%v)", file, line, err)
		}
		c.Line = line
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return out
}

func TestValueSemantics(t *testing.T) {
	for _, c := range loadCases(t, "../condition/testdata/values.jsonl") {
		traits := c.Traits
		if c.Value != nil {
			var v any
			if err := json.Unmarshal(c.Value, &v); err != nil {
				t.Fatal(err)
			}
			traits = map[string]any{"t": v}
		}
		n := mustParse(t, string(c.Cond))
		if got := oracle.Match(n, oracle.Input{Traits: traits}, now); got != *c.Want {
			t.Errorf("values.jsonl:%d: %s on %s: got %v, want %v", c.Line, c.Cond, c.Value, got, *c.Want)
		}
		// The same test as an event property predicate.
		ev := mustParse(t, `{"event": "E", "where": [`+propertyCondition(t, c.Cond)+`]}`)
		in := oracle.Input{Events: []model.Event{{Name: "E", Timestamp: now, Properties: traits}}}
		if got := oracle.Match(ev, in, now); got != *c.Want {
			t.Errorf("values.jsonl:%d: as a property condition: got %v, want %v", c.Line, got, *c.Want)
		}
	}
}

// propertyCondition turns a trait condition into a property condition.
func propertyCondition(t *testing.T, trait json.RawMessage) string {
	var m map[string]any
	if err := json.Unmarshal(trait, &m); err != nil {
		t.Fatal(err)
	}
	m["property"] = m["trait"]
	delete(m, "trait")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEventSemantics(t *testing.T) {
	for _, c := range loadCases(t, "../condition/testdata/events.jsonl") {
		var events []model.Event
		for _, e := range c.Events {
			events = append(events, model.Event{Name: e.Name, Timestamp: e.At, Properties: e.Props})
		}
		n := mustParse(t, string(c.Cond))
		if got := oracle.Match(n, oracle.Input{Events: events}, now); got != *c.Want {
			t.Errorf("events.jsonl:%d: %s: got %v, want %v", c.Line, c.Cond, got, *c.Want)
		}
	}
}

func TestBoolean(t *testing.T) {
	in := oracle.Input{
		Traits:    map[string]any{"plan": "pro", "age": 30.0},
		InSegment: func(id string) bool { return id == "vip" },
	}
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{`{"all": true}`, true},
		{`{"not": {"all": true}}`, false},
		{`{"segment": "vip"}`, true},
		{`{"segment": "other"}`, false},
		{`{"not": {"segment": "other"}}`, true},
		{`{"and": [{"trait": "plan", "op": "eq", "value": "pro"}, {"trait": "age", "op": "gte", "value": 30}]}`, true},
		{`{"and": [{"trait": "plan", "op": "eq", "value": "pro"}, {"trait": "age", "op": "gt", "value": 30}]}`, false},
		{`{"or": [{"trait": "plan", "op": "eq", "value": "free"}, {"trait": "age", "op": "gte", "value": 30}]}`, true},
		{`{"or": [{"trait": "plan", "op": "eq", "value": "free"}, {"trait": "missing", "op": "exists"}]}`, false},
		{`{"not": {"trait": "missing", "op": "exists"}}`, true},
		{`{"not": {"not": {"trait": "missing", "op": "exists"}}}`, false},
		{`{"not": {"event": "Login"}}`, true},
	} {
		if got := oracle.Match(mustParse(t, tc.cond), in, now); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.cond, got, tc.want)
		}
	}
	// Without InSegment a profile is in no segment.
	if oracle.Match(mustParse(t, `{"segment": "vip"}`), oracle.Input{}, now) {
		t.Error("segment matched without InSegment")
	}
}

// profile is a hand-made profile for the article examples.
type profile struct {
	id       string
	traits   map[string]any
	events   []model.Event
	segments []string
}

func (p profile) input() oracle.Input {
	return oracle.Input{Traits: p.traits, Events: p.events, InSegment: func(id string) bool {
		for _, s := range p.segments {
			if s == id {
				return true
			}
		}
		return false
	}}
}

func ev(name string, at time.Time, props map[string]any) model.Event {
	return model.Event{Name: name, Timestamp: at, Properties: props}
}

// members evaluates cond over the profiles and returns the matching ids and,
// for each leaf, how many profiles match it alone.
func members(t *testing.T, cond string, profiles []profile) ([]string, []int) {
	t.Helper()
	n := mustParse(t, cond)
	var ids []string
	sizes := make([]int, len(n.Leaves()))
	for _, p := range profiles {
		if oracle.Match(n, p.input(), now) {
			ids = append(ids, p.id)
		}
		crit := oracle.Criteria(n, p.input(), now)
		if len(crit) != len(sizes) {
			t.Fatalf("Criteria returned %d values for %d leaves", len(crit), len(sizes))
		}
		for i, ok := range crit {
			if ok {
				sizes[i]++
			}
		}
	}
	return ids, sizes
}

// Get all the users who did the event "Added to Cart" exactly 3 times with
// event attribute "Product Category" is "Electronics" in the last 7 days.
func TestExampleAddedToCart(t *testing.T) {
	const cond = `{"event": "Added To Cart",
		"where": [{"property": "product_category", "op": "eq", "value": "Electronics"}],
		"count": {"op": "eq", "value": 3}, "within": {"last": "7d"}}`
	elec := map[string]any{"product_category": "Electronics", "price": 500.0}
	books := map[string]any{"product_category": "Books"}
	profiles := []profile{
		{id: "alice", events: []model.Event{ // 3 in the window, plus other categories and events
			ev("Added To Cart", ago(1*day), elec), ev("Added To Cart", ago(2*day), elec),
			ev("Added To Cart", ago(6*day), elec), ev("Added To Cart", ago(1*day), books),
			ev("Product Viewed", ago(1*day), elec)}},
		{id: "bob", events: []model.Event{ // the third is 8 days old
			ev("Added To Cart", ago(1*day), elec), ev("Added To Cart", ago(2*day), elec),
			ev("Added To Cart", ago(8*day), elec)}},
		{id: "carol", events: []model.Event{ // four: not exactly three
			ev("Added To Cart", ago(1*day), elec), ev("Added To Cart", ago(2*day), elec),
			ev("Added To Cart", ago(3*day), elec), ev("Added To Cart", ago(4*day), elec)}},
		{id: "dave"},
		{id: "erin", events: []model.Event{ // the third is exactly 7 days old: outside
			ev("Added To Cart", ago(1*day), elec), ev("Added To Cart", ago(2*day), elec),
			ev("Added To Cart", ago(7*day), elec)}},
		{id: "frank", events: []model.Event{ // category differs in case
			ev("Added To Cart", ago(1*day), elec), ev("Added To Cart", ago(2*day), elec),
			ev("Added To Cart", ago(3*day), map[string]any{"product_category": "electronics"})}},
	}
	ids, sizes := members(t, cond, profiles)
	if !reflect.DeepEqual(ids, []string{"alice"}) || !reflect.DeepEqual(sizes, []int{1}) {
		t.Errorf("members %v, criteria %v", ids, sizes)
	}
}

// Get all the users who did "Song Played" at least 3 times, with "Song
// Genre" containing "Pop" and "Song Year" equal to 2017, in the last day.
func TestExampleSongPlayed(t *testing.T) {
	const cond = `{"event": "Song Played",
		"where": [{"property": "genre", "op": "contains", "value": "Pop"},
		          {"property": "year", "op": "eq", "value": 2017}],
		"count": {"op": "gte", "value": 3}, "within": {"last": "1d"}}`
	song := func(at time.Time, genre string, year any) model.Event {
		return ev("Song Played", at, map[string]any{"genre": genre, "year": year})
	}
	h := time.Hour
	profiles := []profile{
		{id: "p1", events: []model.Event{song(ago(1*h), "K-Pop", 2017.0), song(ago(2*h), "Pop Rock", 2017.0), song(ago(23*h), "Pop", 2017.0)}},
		{id: "p2", events: []model.Event{song(ago(1*h), "Pop", 2017.0), song(ago(2*h), "Pop", 2016.0), song(ago(3*h), "Pop", 2017.0)}},
		{id: "p3", events: []model.Event{song(ago(1*h), "Pop", 2017.0), song(ago(2*h), "Pop", 2017.0), song(ago(25*h), "Pop", 2017.0)}},
		{id: "p4", events: []model.Event{song(ago(1*h), "Pop", 2017.0), song(ago(2*h), "Pop", "2017"), song(ago(3*h), "Pop", 2017.0),
			song(ago(4*h), "Pop", "2017"), song(ago(5*h), "pop", 2017.0), song(ago(6*h), "Jazz", 2017.0), song(ago(7*h), "Pop", 2017.0)}},
		{id: "p5", events: []model.Event{song(ago(1*h), "Pop", 2017.0), song(ago(2*h), "Pop", 2017.0)}},
	}
	ids, sizes := members(t, cond, profiles)
	if !reflect.DeepEqual(ids, []string{"p1", "p4"}) || !reflect.DeepEqual(sizes, []int{2}) {
		t.Errorf("members %v, criteria %v", ids, sizes)
	}
}

// Users who did not open the app in 30 days.
func TestExampleDidNotOpenApp(t *testing.T) {
	const cond = `{"not": {"event": "App Opened", "within": {"last": "30d"}}}`
	profiles := []profile{
		{id: "recent", events: []model.Event{ev("App Opened", ago(10*day), nil)}},
		{id: "lapsed", events: []model.Event{ev("App Opened", ago(31*day), nil)}},
		{id: "never"},
		{id: "edge", events: []model.Event{ev("App Opened", ago(30*day), nil)}},
		{id: "just-in", events: []model.Event{ev("App Opened", ago(30*day-time.Second), nil)}},
		{id: "other", events: []model.Event{ev("App Closed", ago(1*day), nil)}},
	}
	ids, sizes := members(t, cond, profiles)
	if want := []string{"lapsed", "never", "edge", "other"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("members %v, want %v", ids, want)
	}
	// The only leaf is the event itself (at /not): 2 profiles opened the app.
	if !reflect.DeepEqual(sizes, []int{2}) {
		t.Errorf("criteria %v", sizes)
	}
}

// Bronto's rules of criteria: rules are ANDed, the criteria of a rule ORed,
// and a rule may be inverted. "Active contacts who have been sent a specific
// set of deliveries but have not clicked on any links in those deliveries,
// members of a specific list, with a field value less than 1,000."
func TestExampleRulesOfCriteria(t *testing.T) {
	const cond = `{"and": [
		{"or": [{"trait": "status", "op": "eq", "value": "active"}]},
		{"or": [{"event": "Delivery Sent", "where": [{"property": "delivery_id", "op": "in", "value": ["d1", "d2"]}]}]},
		{"not": {"or": [{"event": "Link Clicked", "where": [{"property": "delivery_id", "op": "in", "value": ["d1", "d2"]}]}]}},
		{"or": [{"segment": "newsletter"}]},
		{"or": [{"trait": "lifetime_value", "op": "lt", "value": 1000}]}
	]}`
	n := mustParse(t, cond)
	var paths []string
	for _, l := range n.Leaves() {
		paths = append(paths, l.Path)
	}
	if want := []string{"/and/0/or/0", "/and/1/or/0", "/and/2/not/or/0", "/and/3/or/0", "/and/4/or/0"}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("leaf paths %v, want %v", paths, want)
	}
	sent := func(id string) model.Event { return ev("Delivery Sent", ago(3*day), map[string]any{"delivery_id": id}) }
	click := func(id string) model.Event { return ev("Link Clicked", ago(2*day), map[string]any{"delivery_id": id}) }
	active := func(ltv any) map[string]any { return map[string]any{"status": "active", "lifetime_value": ltv} }
	list := []string{"newsletter"}
	profiles := []profile{
		{id: "ann", traits: active(500.0), events: []model.Event{sent("d1")}, segments: list},
		{id: "ben", traits: active(500.0), events: []model.Event{sent("d1"), click("d2")}, segments: list},
		{id: "cat", traits: active(999.0), events: []model.Event{sent("d2"), click("d3")}, segments: list},
		{id: "dan", traits: active("500"), events: []model.Event{sent("d1")}, segments: list},
		{id: "eve", traits: active(10.0), events: []model.Event{sent("d1")}},
		{id: "fay", traits: map[string]any{"status": "inactive", "lifetime_value": 1.0}, events: []model.Event{sent("d1")}, segments: list},
		{id: "gus", traits: active(1000.0), events: []model.Event{sent("d9")}, segments: list},
	}
	ids, sizes := members(t, cond, profiles)
	if want := []string{"ann", "cat"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("members %v, want %v", ids, want)
	}
	// Each criterion alone: active (6), sent d1/d2 (6), clicked d1/d2 (1:
	// the leaf, not the inverted rule), on the list (6), value < 1000 (5).
	if want := []int{6, 6, 1, 6, 5}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("criteria %v, want %v", sizes, want)
	}
}

func TestCriteriaSingleLeaf(t *testing.T) {
	n := mustParse(t, `{"trait": "x", "op": "exists"}`)
	got := oracle.Criteria(n, oracle.Input{Traits: map[string]any{"x": 1.0}}, now)
	if !reflect.DeepEqual(got, []bool{true}) {
		t.Errorf("Criteria = %v", got)
	}
}
