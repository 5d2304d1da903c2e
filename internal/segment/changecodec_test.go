package segment

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestChangeCodecMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	cases := []storedChange{
		{Change: Change{Seq: 1, Segment: "s", User: "user-1", Change: "enter", At: at, Reason: "event"}, Num: 7},
		{Change: Change{Seq: 1 << 40, Segment: "rt-seg-001", User: "anon-9", Change: "exit", At: at.Truncate(time.Second), Reason: "time"}, Num: 1<<32 - 1},
		{Change: Change{Seq: 3, Segment: "a<b", User: `quo"te`, Change: "exit", At: at.Add(1), Reason: "merge"}, Num: 0},
		{Change: Change{Seq: 4, Segment: "é", User: "tab\there", Change: "enter", At: at.In(time.FixedZone("", 7200)), Reason: "build"}, Num: 2},
		{Change: Change{Seq: 5, Segment: "x", User: "", Change: "enter", At: time.Time{}, Reason: "delete"}, Num: 3},
	}
	for _, c := range cases {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeChange(&c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encodeChange\n got %s\nwant %s", got, want)
		}
		dc, num, err := DecodeChange(got)
		if err != nil {
			t.Fatal(err)
		}
		if dc.Seq != c.Seq || dc.Segment != c.Segment || dc.User != c.User || dc.Change != c.Change.Change ||
			dc.Reason != c.Reason || !dc.At.Equal(c.At) || num != c.Num {
			t.Errorf("%s decoded as %+v %d", got, dc, num)
		}
		var slow storedChange
		json.Unmarshal(got, &slow)
		if fast, ok := decodeChangeFast(got); ok {
			f, s := fast, slow
			if !f.At.Equal(s.At) || f.At.Location().String() != s.At.Location().String() {
				t.Errorf("fast decode at %v, encoding/json %v", f.At, s.At)
			}
			f.At, s.At = time.Time{}, time.Time{}
			if f != s {
				t.Errorf("fast decode %+v, encoding/json %+v", f, s)
			}
		}
	}
	// Another field order still decodes (through encoding/json).
	c, n, err := DecodeChange([]byte(`{"n":5,"seq":9,"segment":"s","user":"u","change":"exit","at":"2026-01-01T00:00:00Z","reason":"time"}`))
	if err != nil || n != 5 || c.Seq != 9 || c.Reason != "time" {
		t.Fatalf("%+v %d %v", c, n, err)
	}
}
