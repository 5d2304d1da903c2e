package demo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func write(t *testing.T, cfg Config) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := WriteNDJSON(&buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

// TestDeterministic: the same Config gives the same bytes; another seed
// or another now gives others.
func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Profiles: 300, Now: testNow, Days: 30}
	a, _ := write(t, cfg)
	b, _ := write(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the same Config differ")
	}
	for _, other := range []Config{
		{Seed: 8, Profiles: 300, Now: testNow, Days: 30},
		{Seed: 7, Profiles: 300, Now: testNow.Add(24 * time.Hour), Days: 30},
	} {
		if c, _ := write(t, other); bytes.Equal(a, c) {
			t.Errorf("%+v gives the same bytes as %+v", other, cfg)
		}
	}
	var c1, c2 bytes.Buffer
	if _, err := WriteCSV(&c1, cfg); err != nil {
		t.Fatal(err)
	}
	WriteCSV(&c2, cfg)
	if sha256.Sum256(c1.Bytes()) != sha256.Sum256(c2.Bytes()) {
		t.Error("two CSV runs differ")
	}
}

// TestSizesAndContent checks the counts scale with --profiles, --events
// overrides them, and the data set holds what a demo promises.
func TestSizesAndContent(t *testing.T) {
	for _, tc := range []struct {
		cfg        Config
		events     int // event messages, ±2% (some become identifies and aliases)
		bots, bad  int // bad: at least
		identifies int // at least
	}{
		{Config{Seed: 1, Profiles: 50, Now: testNow, Days: 30}, 50 * EventsPerProfile, 1, 3, 50},
		{Config{Seed: 1, Profiles: 1000, Now: testNow, Days: 30}, 20000, 1, 4, 1000},
		{Config{Seed: 1, Profiles: 1000, Events: 5000, Now: testNow, Days: 30}, 5000, 1, 3, 1000},
		{Config{Seed: 2, Profiles: 4000, Now: testNow, Days: 30}, 80000, 2, 15, 4000},
	} {
		data, st := write(t, tc.cfg)
		lines := bytes.Count(data, []byte("\n"))
		if lines != st.Lines || st.Lines != st.Identifies+st.Aliases+st.Events+st.Bad {
			t.Errorf("%+v: %d lines, stats %+v do not add up", tc.cfg, lines, st)
		}
		if d := st.Events - tc.events; d > 0 || -d > tc.events/50 {
			t.Errorf("%+v: %d events, want about %d", tc.cfg, st.Events, tc.events)
		}
		if st.Bots != tc.bots || st.Bad < tc.bad || st.Identifies < tc.identifies {
			t.Errorf("%+v: stats %+v, want %d bots, at least %d bad lines, at least %d identifies", tc.cfg, st, tc.bots, tc.bad, tc.identifies)
		}
		checkContent(t, tc.cfg, data, st)
	}
}

// checkContent parses every line and looks for each kind of message the
// package doc promises.
func checkContent(t *testing.T, cfg Config, data []byte, st Stats) {
	t.Helper()
	seen := map[string]int{}
	ids := map[string]bool{}
	start := cfg.Now.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	bad := 0
	for sc.Scan() {
		var m struct {
			Type, MessageID, UserID, AnonymousID, PreviousID, Event, Name, Timestamp string
			Traits, Properties                                                       map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			bad++
			continue
		}
		if ids[m.MessageID] {
			t.Fatalf("messageId %q twice", m.MessageID)
		}
		ids[m.MessageID] = true
		if m.UserID == "" && m.AnonymousID == "" || m.Type == "track" && m.Event == "" {
			bad++
			continue
		}
		if m.Timestamp != "" {
			ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
			if err != nil || ts.Before(start) || ts.After(cfg.Now) {
				t.Errorf("timestamp %q outside (%s, %s]", m.Timestamp, start, cfg.Now)
			}
		}
		seen[m.Type]++
		switch {
		case m.Type == "identify" && m.UserID == "":
			seen["anonymous identify"]++
		case m.Type == "identify" && m.AnonymousID != "":
			seen["identify linking an anonymous id"]++
		case m.Type == "page" && m.Name != "":
			seen["named page"]++
		case strings.HasPrefix(m.UserID, "bot-"):
			seen["bot event"]++
		}
		if _, ok := m.Properties["product"].(map[string]any); ok {
			seen["nested property"]++
		}
		if _, ok := m.Traits["location"].(map[string]any); ok {
			seen["location trait"]++
		}
		if _, ok := m.Traits["signed_up_at"].(string); ok {
			seen["date trait"]++
		}
		if _, ok := m.Traits["age"].(string); ok {
			seen["age as text (a type conflict)"]++
		}
		if _, ok := m.Properties["price"].(string); ok {
			seen["price as text (a type conflict)"]++
		}
	}
	if bad != st.Bad {
		t.Errorf("%d bad lines, stats say %d", bad, st.Bad)
	}
	if cfg.Profiles < 1000 {
		return // too few for every kind
	}
	for _, want := range []string{"identify", "track", "alias", "page", "anonymous identify",
		"identify linking an anonymous id", "named page", "bot event", "nested property",
		"location trait", "date trait", "age as text (a type conflict)", "price as text (a type conflict)"} {
		if seen[want] == 0 {
			t.Errorf("%+v: no %s in the data set (%v)", cfg, want, seen)
		}
	}
}

func TestCSV(t *testing.T) {
	var buf bytes.Buffer
	st, err := WriteCSV(&buf, Config{Seed: 1, Profiles: 30, Now: testNow, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if st.Profiles != 20 || len(rows) != 21 || rows[0][0] != "userId" {
		t.Fatalf("%d profiles, %d rows, header %q", st.Profiles, len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		if _, err := time.Parse(time.DateOnly, r[3]); err != nil {
			t.Errorf("birthday %q: %v", r[3], err)
		}
	}
}

func TestValidate(t *testing.T) {
	err := Config{Profiles: 0, Events: -1}.Validate()
	for _, want := range []string{"profiles: 0", "events: -1", "days: 0", "now: not set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %q", err, want)
		}
	}
}
