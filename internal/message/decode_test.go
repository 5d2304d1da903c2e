package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// recv is the time every test request is received.
func recv() time.Time { return time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC) }

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// obj builds a JSON object with n keys k0..k(n-1) holding numbers.
func obj(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

func objMap(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = float64(i)
	}
	return m
}

// singleCase is one message sent to a single-message route.
type singleCase struct {
	name  string
	route string
	body  string
	lim   Limits
	// Exactly one of want and err: the valid message (Raw and ReceivedAt
	// are filled in by the test) or the rejection's exact text.
	want *model.Message
	err  string
	// msgID is the Item's MessageID (also for rejected messages).
	msgID string
}

func runSingle(t *testing.T, cases []singleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.route+"/"+tc.name, func(t *testing.T) {
			req, err := Decode(tc.route, []byte(tc.body), recv(), tc.lim)
			if err != nil {
				t.Fatalf("Decode: request error %v", err)
			}
			if len(req.Items) != 1 {
				t.Fatalf("got %d items, want 1", len(req.Items))
			}
			it := req.Items[0]
			if it.Index != 0 || string(it.Raw) != strings.TrimSpace(tc.body) {
				t.Errorf("Index=%d Raw=%s", it.Index, it.Raw)
			}
			if it.MessageID != tc.msgID {
				t.Errorf("MessageID = %q, want %q", it.MessageID, tc.msgID)
			}
			if tc.err != "" {
				if it.Err == nil || it.Msg != nil {
					t.Fatalf("want rejection %q, got Msg=%+v Err=%v", tc.err, it.Msg, it.Err)
				}
				if it.Err.Error() != tc.err {
					t.Fatalf("error\n got: %s\nwant: %s", it.Err, tc.err)
				}
				return
			}
			if it.Err != nil || it.Msg == nil {
				t.Fatalf("want a message, got Err=%v", it.Err)
			}
			want := *tc.want
			want.Raw = json.RawMessage(strings.TrimSpace(tc.body))
			want.ReceivedAt = recv()
			if want.Timestamp.IsZero() {
				want.Timestamp = recv()
			}
			got := *it.Msg
			if got.PropertiesJSON != nil {
				// The properties' bytes as sent: they must read back as
				// the properties (the fuzz test checks this on every input).
				var back map[string]any
				if err := json.Unmarshal(got.PropertiesJSON, &back); err != nil || !reflect.DeepEqual(back, got.Properties) {
					t.Fatalf("PropertiesJSON %s reads back as %v (%v), not %v", got.PropertiesJSON, back, err, got.Properties)
				}
				got.PropertiesJSON = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("message\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "userId and traits", route: "identify",
			body: `{"userId":"u1","messageId":"m1","traits":{"email":"a@b.c","age":31,"vip":true,"tags":["x",1],"address":{"city":"Oslo"}}}`,
			want: &model.Message{Type: model.Identify, MessageID: "m1", UserID: "u1",
				Traits: map[string]any{"email": "a@b.c", "age": 31.0, "vip": true, "tags": []any{"x", 1.0}, "address": map[string]any{"city": "Oslo"}}},
			msgID: "m1"},
		{name: "anonymousId only", route: "identify", body: `{"anonymousId":"a1"}`,
			want: &model.Message{Type: model.Identify, AnonymousID: "a1"}},
		{name: "both ids", route: "identify", body: `{"anonymousId":"a1","userId":"u1","traits":{}}`,
			want: &model.Message{Type: model.Identify, UserID: "u1", AnonymousID: "a1"}},
		{name: "context.traits overlaid by traits", route: "identify",
			body: `{"userId":"u1","traits":{"plan":"pro","a":1},"context":{"ip":"1.2.3.4","traits":{"plan":"free","b":2}}}`,
			want: &model.Message{Type: model.Identify, UserID: "u1", Traits: map[string]any{"plan": "pro", "a": 1.0, "b": 2.0}}},
		{name: "context.traits alone", route: "identify", body: `{"userId":"u1","context":{"traits":{"b":2}}}`,
			want: &model.Message{Type: model.Identify, UserID: "u1", Traits: map[string]any{"b": 2.0}}},
		{name: "type in body ignored", route: "identify", body: `{"type":"track","userId":"u1"}`,
			want: &model.Message{Type: model.Identify, UserID: "u1"}},
		{name: "invalid type in body ignored", route: "identify", body: `{"type":42,"userId":"u1"}`,
			want: &model.Message{Type: model.Identify, UserID: "u1"}},
		{name: "nulls are absent", route: "identify",
			body: `{"userId":"u1","anonymousId":null,"traits":null,"context":null,"timestamp":null,"messageId":null,"properties":null}`,
			want: &model.Message{Type: model.Identify, UserID: "u1"}},
		{name: "integer userId", route: "identify", body: `{"userId":12345}`,
			want: &model.Message{Type: model.Identify, UserID: "12345"}},
		{name: "negative userId", route: "identify", body: `{"userId":-7}`,
			want: &model.Message{Type: model.Identify, UserID: "-7"}},
		{name: "huge integer userId kept exactly", route: "identify", body: `{"userId":12345678901234567890123}`,
			want: &model.Message{Type: model.Identify, UserID: "12345678901234567890123"}},
		{name: "float userId", route: "identify", body: `{"userId":1.5}`,
			want: &model.Message{Type: model.Identify, UserID: "1.5"}},
		{name: "exponent userId", route: "identify", body: `{"userId":1e3}`,
			want: &model.Message{Type: model.Identify, UserID: "1000"}},
		{name: "integral float userId", route: "identify", body: `{"anonymousId":2.0}`,
			want: &model.Message{Type: model.Identify, AnonymousID: "2"}},
		{name: "number messageId", route: "identify", body: `{"userId":"u","messageId":99}`,
			want: &model.Message{Type: model.Identify, UserID: "u", MessageID: "99"}, msgID: "99"},
		{name: "escaped strings", route: "identify", body: `{"userId":"\u00e9\ud83d\ude00\n","traits":{"q\"k":"a\\b\/c"}}`,
			want: &model.Message{Type: model.Identify, UserID: "é😀\n", Traits: map[string]any{`q"k`: `a\b/c`}}},
		{name: "whitespace around body", route: "identify", body: " \n\t{ \"userId\" : \"u\" }\r\n",
			want: &model.Message{Type: model.Identify, UserID: "u"}},
		{name: "duplicate key last wins", route: "identify", body: `{"userId":"a","userId":"b"}`,
			want: &model.Message{Type: model.Identify, UserID: "b"}},
		{name: "keys are case-sensitive", route: "identify", body: `{"userid":"a","UserId":"b"}`,
			err: `message has neither "userId" nor "anonymousId"`},

		{name: "no ids", route: "identify", body: `{"traits":{"a":1}}`,
			err: `message has neither "userId" nor "anonymousId"`},
		{name: "empty ids", route: "identify", body: `{"userId":"","anonymousId":""}`,
			err: `message has neither "userId" nor "anonymousId"`},
		{name: "boolean userId", route: "identify", body: `{"userId":true}`,
			err: `"userId" must be a string or a number, not a boolean`},
		{name: "object anonymousId", route: "identify", body: `{"userId":"u","anonymousId":{}}`,
			err: `"anonymousId" must be a string or a number, not an object`},
		{name: "array userId", route: "identify", body: `{"userId":["u"]}`,
			err: `"userId" must be a string or a number, not an array`},
		{name: "userId out of range", route: "identify", body: `{"userId":1e400}`,
			err: `"userId" is the number 1e400, which is out of range of a 64-bit float`},
		{name: "traits array", route: "identify", body: `{"userId":"u","traits":[1]}`,
			err: `"traits" must be an object, not an array`},
		{name: "traits string", route: "identify", body: `{"userId":"u","traits":"x"}`,
			err: `"traits" must be an object, not a string`},
		{name: "context string", route: "identify", body: `{"userId":"u","context":"x"}`,
			err: `"context" must be an object, not a string`},
		{name: "context.traits array", route: "identify", body: `{"userId":"u","context":{"traits":[]}}`,
			err: `"context.traits" must be an object, not an array`},
		{name: "properties array", route: "identify", body: `{"userId":"u","properties":[]}`,
			err: `"properties" must be an object, not an array`},
		{name: "messageId boolean", route: "identify", body: `{"userId":"u","messageId":false}`,
			err: `"messageId" must be a string or a number, not a boolean`},
		{name: "rejected keeps messageId", route: "identify", body: `{"messageId":"m7"}`,
			err: `message has neither "userId" nor "anonymousId"`, msgID: "m7"},
		{name: "number out of range in traits", route: "identify", body: `{"userId":"u","traits":{"big":1e999}}`,
			err: `"traits" holds the number 1e999, which is out of range of a 64-bit float`},
		{name: "number out of range in context.traits", route: "identify", body: `{"userId":"u","context":{"traits":{"a":{"b":[-1e999]}}}}`,
			err: `"context.traits" holds the number -1e999, which is out of range of a 64-bit float`},
	})
}

func TestTrack(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "full", route: "track",
			body: `{"userId":"u1","anonymousId":"a1","event":"Order Completed","messageId":"m1","properties":{"revenue":42.5,"currency":"USD","items":[{"sku":"s1"}],"coupon":null},"context":{"library":{"name":"analytics-node"}},"integrations":{"All":true},"_metadata":{"x":1e999}}`,
			want: &model.Message{Type: model.Track, UserID: "u1", AnonymousID: "a1", Event: "Order Completed", MessageID: "m1",
				Properties: map[string]any{"revenue": 42.5, "currency": "USD", "items": []any{map[string]any{"sku": "s1"}}, "coupon": nil}},
			msgID: "m1"},
		{name: "no properties", route: "track", body: `{"anonymousId":"a1","event":"E"}`,
			want: &model.Message{Type: model.Track, AnonymousID: "a1", Event: "E"}},
		{name: "empty properties", route: "track", body: `{"anonymousId":"a1","event":"E","properties":{}}`,
			want: &model.Message{Type: model.Track, AnonymousID: "a1", Event: "E", Properties: map[string]any{}}},
		{name: "context.traits set traits", route: "track", body: `{"userId":"u","event":"E","context":{"traits":{"plan":"pro"}}}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Traits: map[string]any{"plan": "pro"}}},
		{name: "top-level traits ignored", route: "track", body: `{"userId":"u","event":"E","traits":[1,2]}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E"}},
		{name: "numbers are float64", route: "track", body: `{"userId":"u","event":"E","properties":{"a":0,"b":-0.5,"c":1e2,"d":12345678901234567890,"e":-999999999999999}}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E",
				Properties: map[string]any{"a": 0.0, "b": -0.5, "c": 100.0, "d": 12345678901234567890.0, "e": -999999999999999.0}}},
		{name: "invalid utf-8 replaced", route: "track", body: "{\"userId\":\"u\xff\",\"event\":\"E\"}",
			want: &model.Message{Type: model.Track, UserID: "u\ufffd", Event: "E"}},

		{name: "no event", route: "track", body: `{"userId":"u"}`,
			err: `track message has no "event"`},
		{name: "empty event", route: "track", body: `{"userId":"u","event":""}`,
			err: `track message has no "event"`},
		{name: "null event", route: "track", body: `{"userId":"u","event":null}`,
			err: `track message has no "event"`},
		{name: "number event", route: "track", body: `{"userId":"u","event":5}`,
			err: `"event" must be a string, not a number`},
		{name: "properties array", route: "track", body: `{"userId":"u","event":"E","properties":[]}`,
			err: `"properties" must be an object, not an array`},
		{name: "properties string", route: "track", body: `{"userId":"u","event":"E","properties":"x"}`,
			err: `"properties" must be an object, not a string`},
		{name: "properties number", route: "track", body: `{"userId":"u","event":"E","properties":1}`,
			err: `"properties" must be an object, not a number`},
		{name: "properties boolean", route: "track", body: `{"userId":"u","event":"E","properties":true}`,
			err: `"properties" must be an object, not a boolean`},
		{name: "ids checked before event", route: "track", body: `{"event":"E"}`,
			err: `message has neither "userId" nor "anonymousId"`},
		{name: "number out of range in properties", route: "track", body: `{"userId":"u","event":"E","properties":{"p":1e309}}`,
			err: `"properties" holds the number 1e309, which is out of range of a 64-bit float`},
	})
}

func TestPageScreen(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "name and properties", route: "page", body: `{"userId":"u","name":"Pricing","properties":{"url":"https://x/p","name":"old"}}`,
			want: &model.Message{Type: model.Page, UserID: "u", Event: model.PageEvent,
				Properties: map[string]any{"url": "https://x/p", "name": "Pricing"}}},
		{name: "name only", route: "page", body: `{"userId":"u","name":"Home"}`,
			want: &model.Message{Type: model.Page, UserID: "u", Event: model.PageEvent, Properties: map[string]any{"name": "Home"}}},
		{name: "no name", route: "page", body: `{"anonymousId":"a"}`,
			want: &model.Message{Type: model.Page, AnonymousID: "a", Event: model.PageEvent}},
		{name: "empty name is absent", route: "page", body: `{"anonymousId":"a","name":"","properties":{"path":"/"}}`,
			want: &model.Message{Type: model.Page, AnonymousID: "a", Event: model.PageEvent, Properties: map[string]any{"path": "/"}}},
		{name: "event field ignored", route: "page", body: `{"anonymousId":"a","event":7}`,
			want: &model.Message{Type: model.Page, AnonymousID: "a", Event: model.PageEvent}},
		{name: "screen", route: "screen", body: `{"userId":"u","name":"Settings","properties":{"n":1}}`,
			want: &model.Message{Type: model.Screen, UserID: "u", Event: model.ScreenEvent, Properties: map[string]any{"n": 1.0, "name": "Settings"}}},
		{name: "screen no name", route: "screen", body: `{"userId":"u"}`,
			want: &model.Message{Type: model.Screen, UserID: "u", Event: model.ScreenEvent}},
		{name: "name number", route: "page", body: `{"userId":"u","name":3}`,
			err: `"name" must be a string, not a number`},
		{name: "name object", route: "screen", body: `{"userId":"u","name":{}}`,
			err: `"name" must be a string, not an object`},
		{name: "properties array", route: "screen", body: `{"userId":"u","properties":[]}`,
			err: `"properties" must be an object, not an array`},
		{name: "no ids", route: "screen", body: `{"name":"x"}`,
			err: `message has neither "userId" nor "anonymousId"`},
	})
}

func TestGroup(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "traits belong to the group", route: "group",
			body: `{"userId":"u","groupId":"g1","traits":{"name":"Acme","employees":50},"context":{"traits":{"role":"admin"}}}`,
			want: &model.Message{Type: model.Group, UserID: "u", GroupID: "g1", Event: model.GroupEvent,
				Traits:     map[string]any{"role": "admin"},
				Properties: map[string]any{"groupId": "g1", "traits": map[string]any{"name": "Acme", "employees": 50.0}}}},
		{name: "number groupId no traits", route: "group", body: `{"anonymousId":"a","groupId":42}`,
			want: &model.Message{Type: model.Group, AnonymousID: "a", GroupID: "42", Event: model.GroupEvent,
				Properties: map[string]any{"groupId": "42"}}},
		{name: "properties field ignored", route: "group", body: `{"anonymousId":"a","groupId":"g","properties":{"x":1}}`,
			want: &model.Message{Type: model.Group, AnonymousID: "a", GroupID: "g", Event: model.GroupEvent,
				Properties: map[string]any{"groupId": "g"}}},
		{name: "no groupId", route: "group", body: `{"userId":"u"}`,
			err: `group message has no "groupId"`},
		{name: "empty groupId", route: "group", body: `{"userId":"u","groupId":""}`,
			err: `group message has no "groupId"`},
		{name: "boolean groupId", route: "group", body: `{"userId":"u","groupId":true}`,
			err: `"groupId" must be a string or a number, not a boolean`},
		{name: "traits array", route: "group", body: `{"userId":"u","groupId":"g","traits":[]}`,
			err: `"traits" must be an object, not an array`},
		{name: "no ids", route: "group", body: `{"groupId":"g"}`,
			err: `message has neither "userId" nor "anonymousId"`},
	})
}

func TestAlias(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "userId and previousId", route: "alias", body: `{"userId":"u","previousId":"anon-1"}`,
			want: &model.Message{Type: model.Alias, UserID: "u", PreviousID: "anon-1"}},
		{name: "number previousId", route: "alias", body: `{"userId":7,"previousId":8,"anonymousId":"a"}`,
			want: &model.Message{Type: model.Alias, UserID: "7", PreviousID: "8", AnonymousID: "a"}},
		{name: "context.traits", route: "alias", body: `{"userId":"u","previousId":"p","context":{"traits":{"x":"y"}}}`,
			want: &model.Message{Type: model.Alias, UserID: "u", PreviousID: "p", Traits: map[string]any{"x": "y"}}},
		{name: "anonymousId is not enough", route: "alias", body: `{"anonymousId":"a","previousId":"p"}`,
			err: `alias message has no "userId"`},
		{name: "no previousId", route: "alias", body: `{"userId":"u"}`,
			err: `alias message has no "previousId"`},
		{name: "empty previousId", route: "alias", body: `{"userId":"u","previousId":""}`,
			err: `alias message has no "previousId"`},
		{name: "object previousId", route: "alias", body: `{"userId":"u","previousId":{}}`,
			err: `"previousId" must be a string or a number, not an object`},
	})
}

func TestTimestamps(t *testing.T) {
	runSingle(t, []singleCase{
		{name: "timestamp as sent", route: "track", body: `{"userId":"u","event":"E","timestamp":"2024-04-30T08:00:00.123Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-04-30T08:00:00.123Z")}},
		{name: "offset normalised to UTC", route: "track", body: `{"userId":"u","event":"E","timestamp":"2024-04-30T10:00:00+02:00"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-04-30T08:00:00Z")}},
		{name: "originalTimestamp when no timestamp", route: "track", body: `{"userId":"u","event":"E","originalTimestamp":"2024-04-30T08:00:00Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-04-30T08:00:00Z")}},
		{name: "timestamp wins over originalTimestamp", route: "track",
			body: `{"userId":"u","event":"E","originalTimestamp":"not a time","timestamp":"2024-04-30T08:00:00Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-04-30T08:00:00Z")}},
		{name: "null timestamp falls back to originalTimestamp", route: "track",
			body: `{"userId":"u","event":"E","timestamp":null,"originalTimestamp":"2024-04-30T08:00:00Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-04-30T08:00:00Z")}},
		// Client clock 5 minutes fast: sent at 12:05 by its clock, received
		// at 12:00, so the event at 11:00 by its clock happened at 10:55.
		{name: "skew corrected", route: "track",
			body: `{"userId":"u","event":"E","timestamp":"2024-05-01T11:00:00Z","sentAt":"2024-05-01T12:05:00Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: at("2024-05-01T10:55:00Z")}},
		{name: "skew corrected for slow clock", route: "identify",
			body: `{"userId":"u","originalTimestamp":"2024-05-01T11:00:00.5Z","sentAt":"2024-05-01T11:59:59Z"}`,
			want: &model.Message{Type: model.Identify, UserID: "u", Timestamp: at("2024-05-01T11:00:01.5Z")}},
		{name: "sentAt without timestamp keeps receivedAt", route: "track",
			body: `{"userId":"u","event":"E","sentAt":"2024-05-01T12:05:00Z"}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Timestamp: recv()}},
		{name: "no timestamps", route: "alias", body: `{"userId":"u","previousId":"p"}`,
			want: &model.Message{Type: model.Alias, UserID: "u", PreviousID: "p", Timestamp: recv()}},
		{name: "invalid timestamp", route: "track", body: `{"userId":"u","event":"E","timestamp":"yesterday"}`,
			err: `"timestamp" must be an RFC 3339 time, not "yesterday"`},
		{name: "empty timestamp", route: "track", body: `{"userId":"u","event":"E","timestamp":""}`,
			err: `"timestamp" must be an RFC 3339 time, not ""`},
		{name: "date-only timestamp", route: "track", body: `{"userId":"u","event":"E","timestamp":"2024-05-01"}`,
			err: `"timestamp" must be an RFC 3339 time, not "2024-05-01"`},
		{name: "number timestamp", route: "track", body: `{"userId":"u","event":"E","timestamp":1714560000}`,
			err: `"timestamp" must be an RFC 3339 time string, not a number`},
		{name: "invalid originalTimestamp", route: "page", body: `{"userId":"u","originalTimestamp":"2024-13-01T00:00:00Z"}`,
			err: `"originalTimestamp" must be an RFC 3339 time, not "2024-13-01T00:00:00Z"`},
		{name: "invalid sentAt", route: "track", body: `{"userId":"u","event":"E","timestamp":"2024-05-01T11:00:00Z","sentAt":"soon"}`,
			err: `"sentAt" must be an RFC 3339 time, not "soon"`},
		{name: "invalid sentAt without timestamp", route: "track", body: `{"userId":"u","event":"E","sentAt":{}}`,
			err: `"sentAt" must be an RFC 3339 time string, not an object`},
		{name: "long bad value truncated", route: "track", body: `{"userId":"u","event":"E","timestamp":"` + strings.Repeat("x", 100) + `"}`,
			err: `"timestamp" must be an RFC 3339 time, not "` + strings.Repeat("x", 64) + `…"`},
	})
}

func TestMessageLimits(t *testing.T) {
	lim := Limits{MaxProperties: 3, MaxTraits: 4}
	runSingle(t, []singleCase{
		{name: "properties at limit", route: "track", lim: lim, body: `{"userId":"u","event":"E","properties":` + obj(3) + `}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Properties: objMap(3)}},
		{name: "properties over limit", route: "track", lim: lim, body: `{"userId":"u","event":"E","properties":` + obj(4) + `}`,
			err: `"properties" has 4 keys, over the limit of 3`},
		{name: "page name not counted", route: "page", lim: lim, body: `{"userId":"u","name":"n","properties":` + obj(3) + `}`,
			want: &model.Message{Type: model.Page, UserID: "u", Event: model.PageEvent,
				Properties: map[string]any{"k0": 0.0, "k1": 1.0, "k2": 2.0, "name": "n"}}},
		{name: "screen properties over limit", route: "screen", lim: lim, body: `{"userId":"u","properties":` + obj(4) + `}`,
			err: `"properties" has 4 keys, over the limit of 3`},
		{name: "traits at limit", route: "identify", lim: lim, body: `{"userId":"u","traits":` + obj(4) + `}`,
			want: &model.Message{Type: model.Identify, UserID: "u", Traits: objMap(4)}},
		{name: "traits over limit", route: "identify", lim: lim, body: `{"userId":"u","traits":` + obj(5) + `}`,
			err: `message sets 5 traits, over the limit of 4`},
		{name: "merged traits counted once", route: "identify", lim: lim,
			body: `{"userId":"u","traits":` + obj(4) + `,"context":{"traits":` + obj(4) + `}}`,
			want: &model.Message{Type: model.Identify, UserID: "u", Traits: objMap(4)}},
		{name: "merged traits over limit", route: "identify", lim: lim,
			body: `{"userId":"u","traits":{"a":1,"b":2,"c":3},"context":{"traits":{"d":4,"e":5}}}`,
			err:  `message sets 5 traits, over the limit of 4`},
		{name: "context.traits over limit", route: "track", lim: lim,
			body: `{"userId":"u","event":"E","context":{"traits":` + obj(5) + `}}`,
			err:  `message sets 5 traits, over the limit of 4`},
		{name: "group traits at limit", route: "group", lim: lim, body: `{"userId":"u","groupId":"g","traits":` + obj(4) + `}`,
			want: &model.Message{Type: model.Group, UserID: "u", GroupID: "g", Event: model.GroupEvent,
				Properties: map[string]any{"groupId": "g", "traits": objMap(4)}}},
		{name: "group traits over limit", route: "group", lim: lim, body: `{"userId":"u","groupId":"g","traits":` + obj(5) + `}`,
			err: `group "traits" has 5 keys, over the limit of 4`},
		{name: "default properties at limit", route: "track", body: `{"userId":"u","event":"E","properties":` + obj(255) + `}`,
			want: &model.Message{Type: model.Track, UserID: "u", Event: "E", Properties: objMap(255)}},
		{name: "default properties over limit", route: "track", body: `{"userId":"u","event":"E","properties":` + obj(256) + `}`,
			err: `"properties" has 256 keys, over the limit of 255`},
		{name: "default traits at limit", route: "identify", body: `{"userId":"u","traits":` + obj(500) + `}`,
			want: &model.Message{Type: model.Identify, UserID: "u", Traits: objMap(500)}},
		{name: "default traits over limit", route: "identify", body: `{"userId":"u","traits":` + obj(501) + `}`,
			err: `message sets 501 traits, over the limit of 500`},
	})
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxMessageBytes: 32768, MaxBatchBytes: 512000, MaxProperties: 255, MaxTraits: 500}
	if got := DefaultLimits(); got != want {
		t.Fatalf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{MaxTraits: 7, MaxBatchBytes: -1}).withDefaults(); got != (Limits{32768, 512000, 255, 7}) {
		t.Fatalf("withDefaults = %+v", got)
	}
}

func TestWriteKey(t *testing.T) {
	for _, tc := range []struct{ route, body, want string }{
		{"track", `{"writeKey":"wk1","userId":"u","event":"E"}`, "wk1"},
		{"batch", `{"batch":[],"writeKey":"wk2"}`, "wk2"},
		{"batch", `{"writeKey":"wk3","batch":[{"type":"track","writeKey":"inner","userId":"u","event":"E"}]}`, "wk3"},
		{"batch", `{"batch":[],"writeKey":5}`, ""},
		{"identify", `{"userId":"u"}`, ""},
	} {
		req, err := Decode(tc.route, []byte(tc.body), recv(), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if req.WriteKey != tc.want {
			t.Errorf("%s: WriteKey = %q, want %q", tc.body, req.WriteKey, tc.want)
		}
	}
}

// itemWant is the expected outcome of one batch item.
type itemWant struct {
	msgID string
	err   string
	check func(t *testing.T, m *model.Message)
}

func runBatch(t *testing.T, body string, want []itemWant) *Request {
	t.Helper()
	req, err := Decode("batch", []byte(body), recv(), Limits{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(req.Items) != len(want) {
		t.Fatalf("got %d items, want %d", len(req.Items), len(want))
	}
	for i, w := range want {
		it := req.Items[i]
		if it.Index != i {
			t.Errorf("item %d: Index = %d", i, it.Index)
		}
		if it.MessageID != w.msgID {
			t.Errorf("item %d: MessageID = %q, want %q", i, it.MessageID, w.msgID)
		}
		if !json.Valid(it.Raw) {
			t.Errorf("item %d: Raw %q is not JSON", i, it.Raw)
		}
		if w.err != "" {
			if it.Err == nil || it.Msg != nil {
				t.Errorf("item %d: want rejection %q, got Msg=%+v", i, w.err, it.Msg)
			} else if it.Err.Error() != w.err {
				t.Errorf("item %d: error\n got: %s\nwant: %s", i, it.Err, w.err)
			}
			continue
		}
		if it.Err != nil || it.Msg == nil {
			t.Errorf("item %d: unexpected rejection %v", i, it.Err)
			continue
		}
		if string(it.Msg.Raw) != string(it.Raw) {
			t.Errorf("item %d: Msg.Raw differs from Item.Raw", i)
		}
		if w.check != nil {
			w.check(t, it.Msg)
		}
	}
	return req
}

func TestBatch(t *testing.T) {
	body := `{"batch":[
		{"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"m0"},
		{"type":"track" , "event":"Signed Up",  "anonymousId":"a1","messageId":"m1"},
		"not an object",
		{"type":"track","userId":"u1","messageId":"m3"},
		{"userId":"u1","messageId":"m4"},
		{"type":"Track","userId":"u1","messageId":"m5"},
		{"type":1,"userId":"u1","messageId":6},
		{"type":"page","userId":"u1","name":"Home","messageId":"m7"},
		{"type":"screen","userId":"u1","messageId":"m8"},
		{"type":"group","userId":"u1","groupId":"g","messageId":"m9"},
		{"type":"alias","userId":"u1","previousId":"a1","messageId":"m10"},
		[1,2],
		null,
		{"type":null,"userId":"u1"},
		{}
	],"sentAt":"2024-05-01T12:00:00Z"}`
	req := runBatch(t, body, []itemWant{
		{msgID: "m0", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Identify || m.UserID != "u1" || m.Traits["plan"] != "pro" {
				t.Errorf("item 0: %+v", m)
			}
		}},
		{msgID: "m1", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Track || m.Event != "Signed Up" || m.AnonymousID != "a1" {
				t.Errorf("item 1: %+v", m)
			}
		}},
		{err: `message is not a JSON object, it is a string`},
		{msgID: "m3", err: `track message has no "event"`},
		{msgID: "m4", err: `message has no "type"`},
		{msgID: "m5", err: `"type" "Track" is not one of identify, track, page, screen, group, alias`},
		{msgID: "6", err: `"type" must be a string, not a number`},
		{msgID: "m7", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Page || m.Event != model.PageEvent || m.Properties["name"] != "Home" {
				t.Errorf("item 7: %+v", m)
			}
		}},
		{msgID: "m8", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Screen || m.Event != model.ScreenEvent {
				t.Errorf("item 8: %+v", m)
			}
		}},
		{msgID: "m9", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Group || m.GroupID != "g" || m.Event != model.GroupEvent {
				t.Errorf("item 9: %+v", m)
			}
		}},
		{msgID: "m10", check: func(t *testing.T, m *model.Message) {
			if m.Type != model.Alias || m.PreviousID != "a1" {
				t.Errorf("item 10: %+v", m)
			}
		}},
		{err: `message is not a JSON object, it is an array`},
		{err: `message is not a JSON object, it is null`},
		{err: `message has no "type"`},
		{err: `message has no "type"`},
	})
	if got := string(req.Items[1].Raw); got != `{"type":"track" , "event":"Signed Up",  "anonymousId":"a1","messageId":"m1"}` {
		t.Errorf("Raw of item 1 = %s", got)
	}
	if got := string(req.Items[2].Raw); got != `"not an object"` {
		t.Errorf("Raw of item 2 = %s", got)
	}
}

func TestBatchEmpty(t *testing.T) {
	for _, body := range []string{`{"batch":[]}`, `{"batch":[ ]}`, `{"batch":[{}],"batch":[]}`} {
		req, err := Decode("batch", []byte(body), recv(), Limits{})
		if err != nil || len(req.Items) != 0 {
			t.Errorf("%s: req=%+v err=%v", body, req, err)
		}
	}
}

func TestBatchSentAt(t *testing.T) {
	// The batch was sent at 12:10 by a clock 10 minutes fast.
	body := `{"sentAt":"2024-05-01T12:10:00Z","batch":[
		{"type":"track","userId":"u","event":"A","timestamp":"2024-05-01T11:10:00Z"},
		{"type":"track","userId":"u","event":"B","timestamp":"2024-05-01T11:10:00Z","sentAt":"2024-05-01T11:00:00Z"},
		{"type":"track","userId":"u","event":"C"},
		{"type":"track","userId":"u","event":"D","originalTimestamp":"2024-05-01T12:09:00Z"}
	]}`
	wantTS := func(ts string) func(*testing.T, *model.Message) {
		return func(t *testing.T, m *model.Message) {
			if !m.Timestamp.Equal(at(ts)) {
				t.Errorf("%s: Timestamp = %v, want %s", m.Event, m.Timestamp, ts)
			}
		}
	}
	runBatch(t, body, []itemWant{
		{check: wantTS("2024-05-01T11:00:00Z")},
		{check: wantTS("2024-05-01T12:10:00Z")}, // own sentAt wins: clock an hour slow
		{check: wantTS("2024-05-01T12:00:00Z")},
		{check: wantTS("2024-05-01T11:59:00Z")},
	})

	// An invalid batch sentAt rejects the messages that would use it.
	runBatch(t, `{"batch":[
		{"type":"track","userId":"u","event":"A"},
		{"type":"track","userId":"u","event":"B","sentAt":"2024-05-01T12:00:00Z"}
	],"sentAt":"later"}`, []itemWant{
		{err: `batch "sentAt" must be an RFC 3339 time, not "later"`},
		{},
	})
	runBatch(t, `{"batch":[{"type":"track","userId":"u","event":"A"}],"sentAt":false}`, []itemWant{
		{err: `batch "sentAt" must be an RFC 3339 time string, not a boolean`},
	})
}

func TestBatchContext(t *testing.T) {
	body := `{"batch":[
		{"type":"identify","userId":"u1","traits":{"a":1}},
		{"type":"identify","userId":"u2","context":{"traits":{"own":true}}},
		{"type":"track","userId":"u3","event":"E","context":{"ip":"1.1.1.1"}},
		{"type":"identify","userId":"u4","traits":{"plan":"own"}}
	],"context":{"library":{"name":"analytics-go"},"traits":{"plan":"batch","nested":{"x":1}}}}`
	req := runBatch(t, body, []itemWant{
		{check: func(t *testing.T, m *model.Message) {
			want := map[string]any{"a": 1.0, "plan": "batch", "nested": map[string]any{"x": 1.0}}
			if !reflect.DeepEqual(m.Traits, want) {
				t.Errorf("u1 traits %v", m.Traits)
			}
		}},
		{check: func(t *testing.T, m *model.Message) {
			// The message's own context.traits replace the batch's.
			if !reflect.DeepEqual(m.Traits, map[string]any{"own": true}) {
				t.Errorf("u2 traits %v", m.Traits)
			}
		}},
		{check: func(t *testing.T, m *model.Message) {
			// A context without traits still gets the batch's traits.
			if m.Traits["plan"] != "batch" {
				t.Errorf("u3 traits %v", m.Traits)
			}
		}},
		{check: func(t *testing.T, m *model.Message) {
			if m.Traits["plan"] != "own" {
				t.Errorf("u4 traits %v", m.Traits)
			}
		}},
	})
	// No two messages share the batch's maps.
	req.Items[0].Msg.Traits["nested"].(map[string]any)["x"] = 2.0
	if req.Items[2].Msg.Traits["nested"].(map[string]any)["x"] != 1.0 {
		t.Error("batch context.traits shared between messages")
	}

	runBatch(t, `{"context":"x","batch":[
		{"type":"track","userId":"u","event":"A"},
		{"type":"track","userId":"u","event":"A","context":{"traits":{}}}
	]}`, []itemWant{
		{err: `batch "context" must be an object, not a string`},
		{},
	})
	runBatch(t, `{"context":{"traits":[1]},"batch":[
		{"type":"track","userId":"u","event":"A"},
		{"type":"track","userId":"u","event":"A","context":{"traits":{"a":1}}}
	]}`, []itemWant{
		{err: `batch "context.traits" must be an object, not an array`},
		{},
	})
	runBatch(t, `{"context":{"traits":{"n":1e400}},"batch":[
		{"type":"track","userId":"u","event":"A"},
		{"type":"track","userId":"u","event":"A","context":{"traits":{"a":1}}}
	]}`, []itemWant{
		{err: `batch "context.traits" holds the number 1e400, which is out of range of a 64-bit float`},
		{},
	})
	runBatch(t, `{"context":null,"batch":[{"type":"track","userId":"u","event":"A"}]}`, []itemWant{{}})
}

func TestRequestErrors(t *testing.T) {
	big := func(n int) string { // a valid track message of exactly n bytes
		head := `{"type":"track","userId":"u","event":"E","properties":{"p":"`
		tail := `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	small := Limits{MaxMessageBytes: 100, MaxBatchBytes: 300}
	for _, tc := range []struct {
		name, route, body string
		lim               Limits
		is                error  // nil: must succeed
		msg               string // exact error text
	}{
		{name: "empty", route: "track", body: ``, is: ErrMalformed, msg: `body is empty: malformed request`},
		{name: "blank", route: "batch", body: " \n ", is: ErrMalformed, msg: `body is empty: malformed request`},
		{name: "array", route: "batch", body: `[{"type":"track"}]`, is: ErrMalformed, msg: `body is not a JSON object, it is an array: malformed request`},
		{name: "string", route: "track", body: `"x"`, is: ErrMalformed, msg: `body is not a JSON object, it is a string: malformed request`},
		{name: "number", route: "identify", body: `12`, is: ErrMalformed, msg: `body is not a JSON object, it is a number: malformed request`},
		{name: "null", route: "identify", body: `null`, is: ErrMalformed, msg: `body is not a JSON object, it is null: malformed request`},
		{name: "garbage", route: "identify", body: `hello`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character 'h' looking for beginning of value at offset 0: malformed request`},
		{name: "bad array", route: "identify", body: `[1,]`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character ']' looking for beginning of value at offset 3: malformed request`},
		{name: "missing colon", route: "track", body: `{"userId" "u"}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '"' after object key at offset 10: malformed request`},
		{name: "trailing comma", route: "track", body: `{"userId":"u",}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '}' looking for beginning of object key string at offset 14: malformed request`},
		{name: "truncated", route: "batch", body: `{"batch":[{"type":"track"`, is: ErrMalformed,
			msg: `body is not a JSON object: unexpected end of JSON input at offset 25: malformed request`},
		{name: "trailing data", route: "track", body: `{"userId":"u"} {}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '{' after top-level value at offset 15: malformed request`},
		{name: "trailing data batch", route: "batch", body: `{"batch":[]}x`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character 'x' after top-level value at offset 12: malformed request`},
		{name: "bad literal", route: "batch", body: `{"batch":[tru]}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character ']' in literal true (expecting 'e') at offset 13: malformed request`},
		{name: "bad number", route: "batch", body: `{"batch":[-]}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character ']' in numeric literal at offset 11: malformed request`},
		{name: "leading zero", route: "batch", body: `{"batch":[01]}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '1' after array element at offset 11: malformed request`},
		{name: "bad escape", route: "track", body: `{"userId":"\x"}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character 'x' in string escape code at offset 12: malformed request`},
		{name: "bad unicode escape", route: "track", body: `{"userId":"\u12G4"}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character 'G' in \u hexadecimal character escape at offset 15: malformed request`},
		{name: "control char", route: "track", body: "{\"userId\":\"a\tb\"}", is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '\t' in string literal at offset 12: malformed request`},
		{name: "bad syntax in skipped field", route: "track", body: `{"userId":"u","event":"E","integrations":{"a":[1 2]}}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '2' after array element at offset 49: malformed request`},
		{name: "bad syntax in context", route: "track", body: `{"context":{"library":{"name":x}}}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character 'x' looking for beginning of value at offset 30: malformed request`},
		{name: "bad syntax in batch context", route: "batch", body: `{"batch":[],"context":{"traits":{"a":}}}`, is: ErrMalformed,
			msg: `body is not a JSON object: invalid character '}' looking for beginning of value at offset 37: malformed request`},
		{name: "no batch", route: "batch", body: `{"type":"track","userId":"u","event":"E"}`, is: ErrMalformed,
			msg: `body has no "batch" array: malformed request`},
		{name: "null batch", route: "batch", body: `{"batch":null}`, is: ErrMalformed,
			msg: `body has no "batch" array: malformed request`},
		{name: "batch object", route: "batch", body: `{"batch":{"type":"track"}}`, is: ErrMalformed,
			msg: `"batch" must be an array, not an object: malformed request`},
		{name: "batch string", route: "batch", body: `{"batch":"[]"}`, is: ErrMalformed,
			msg: `"batch" must be an array, not a string: malformed request`},
		{name: "deep nesting", route: "track", body: `{"userId":"u","event":"E","properties":{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
			is: ErrMalformed, msg: `body is not a JSON object: nesting deeper than 10000 levels at offset 10042: malformed request`},

		{name: "body at limit", route: "batch", lim: small, body: `{"batch":[` + big(100) + `,` + big(100) + `],"x":"` + strings.Repeat("y", 300-220) + `"}`},
		{name: "body over limit", route: "batch", lim: small, body: `{"batch":[` + big(100) + `,` + big(100) + `],"x":"` + strings.Repeat("y", 301-220) + `"}`,
			is: ErrTooLarge, msg: `body is 301 bytes, over the 300-byte limit: request too large`},
		{name: "message at limit", route: "batch", lim: small, body: `{"batch":[` + big(70) + `,` + big(100) + `]}`},
		{name: "message over limit", route: "batch", lim: small, body: `{"batch":[` + big(70) + `,` + big(101) + `]}`,
			is: ErrTooLarge, msg: `message 1 is 101 bytes, over the 100-byte limit: request too large`},
		{name: "non-object message over limit", route: "batch", lim: small, body: `{"batch":["` + strings.Repeat("s", 99) + `"]}`,
			is: ErrTooLarge, msg: `message 0 is 101 bytes, over the 100-byte limit: request too large`},
		{name: "single at limit", route: "track", lim: small, body: " " + big(100) + " "},
		{name: "single over limit", route: "track", lim: small, body: big(101),
			is: ErrTooLarge, msg: `message is 101 bytes, over the 100-byte limit: request too large`},
		{name: "single over limit refused before parsing", route: "track", lim: small, body: "{" + strings.Repeat(" ", 100) + "x} \n",
			is: ErrTooLarge, msg: `message is 103 bytes, over the 100-byte limit: request too large`},
		{name: "default message at limit", route: "batch", body: `{"batch":[` + big(32768) + `]}`},
		{name: "default message over limit", route: "batch", body: `{"batch":[` + big(32769) + `]}`,
			is: ErrTooLarge, msg: `message 0 is 32769 bytes, over the 32768-byte limit: request too large`},
		{name: "default body over limit", route: "batch", body: `{"batch":[],"x":"` + strings.Repeat("y", 512001-len(`{"batch":[],"x":""}`)) + `"}`,
			is: ErrTooLarge, msg: `body is 512001 bytes, over the 512000-byte limit: request too large`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Decode(tc.route, []byte(tc.body), recv(), tc.lim)
			if tc.is == nil {
				if err != nil || req == nil {
					t.Fatalf("want success, got %v", err)
				}
				for _, it := range req.Items {
					if it.Err != nil {
						t.Fatalf("item %d rejected: %v", it.Index, it.Err)
					}
				}
				return
			}
			if req != nil {
				t.Fatalf("got a request along with error %v", err)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not wrap %v", err, tc.is)
			}
			if err.Error() != tc.msg {
				t.Fatalf("error\n got: %s\nwant: %s", err, tc.msg)
			}
		})
	}
}

func TestUnknownRoute(t *testing.T) {
	_, err := Decode("v1/track", []byte(`{}`), recv(), Limits{})
	if err == nil || errors.Is(err, ErrMalformed) || err.Error() != `message: unknown route "v1/track"` {
		t.Fatalf("err = %v", err)
	}
}

// TestParserMatchesEncodingJSON checks the hand-written parser against
// encoding/json on values chosen to hit every branch.
func TestParserMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-0.0`, `1.5e-3`, `1E+2`, `123456789012345`, `1234567890123456`,
		`-9007199254740993`, `4.9e-324`, `1e-400`, `true`, `false`, `null`,
		`"\u0000\u001f\"\\\/\b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00\ud83d"`, `"\ud83dx"`,
		`"\ud83d\u0041"`, `"\ud83d\\"`, "\"\xff\xfe\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", `"é日本"`,
		"\"\\u00e9\xff\"", `{"a":{"b":[1,{"c":null}]},"a":2}`, ` [ 1 , 2 ] `, `{"":""}`,
		`[1,]`, `{"a":1,}`, `{,}`, `[01]`, `1.`, `.5`, `-`, `1e`, `1e+`, `"abc`, `"\u12"`, `{"a" 1}`,
		`nul`, `tru`, `fals`, `"\a"`, "\"\x01\"", `[`, `{`, `{"a":`, `{"a"`, "\ufeff{}",
		`"\u00`, `"\ud83d\u12`, `"\ud83d\uZZZZ"`, `"\`, `1.5e`, `-a`, `[1 2]`, `{"a":1 "b":2}`, "\xff", "[\xff]",
		`[1.5E-7,-12e+3,0.0,1e309]`, `{"a":{"b":{"c":[[[]]]}}}`, `"a\u0041\/\b"`, `[true,false,null]`, `{"a":tru}`,
	} {
		var want any
		wantErr := json.Unmarshal([]byte(in), &want)
		p := &parser{b: []byte(in)}
		p.ws()
		got, err := p.value()
		if err == nil {
			p.ws()
			if p.i < len(p.b) {
				err = p.unexpected("after top-level value")
			}
		}
		if err == nil && p.sem != nil {
			err = p.sem
		}
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%q: parser error %v, encoding/json error %v", in, err, wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: parser %#v, encoding/json %#v", in, got, want)
		}
		// skip agrees with value on syntax.
		q := &parser{b: []byte(in)}
		q.ws()
		serr := q.skip()
		if serr == nil {
			q.ws()
			if q.i < len(q.b) {
				serr = q.unexpected("after top-level value")
			}
		}
		if (serr == nil) != json.Valid([]byte(in)) {
			t.Errorf("%q: skip error %v, json.Valid %v", in, serr, json.Valid([]byte(in)))
		}
	}
}
