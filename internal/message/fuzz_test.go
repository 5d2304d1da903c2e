package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/cohortdb/cohort/internal/model"
)

// fuzzRoute maps the fuzzer's route byte to a route.
func fuzzRoute(r uint8) string {
	routes := [...]string{"batch", "identify", "track", "alias", "page", "screen", "group"}
	return routes[int(r)%len(routes)]
}

// FuzzDecode decodes arbitrary bodies on every route and checks the
// decoder's invariants, and its JSON reading against encoding/json. The
// seed corpus is in testdata/fuzz/FuzzDecode: payloads as analytics-node,
// analytics-python, analytics-go and RudderStack SDKs send them, and
// malformed ones.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte(`{"batch":[{"type":"track","userId":"u","event":"E","properties":{"a":1}}],"sentAt":"2024-05-01T12:00:00Z"}`))
	f.Add(uint8(1), []byte(`{"userId":"u","traits":{"email":"a@b.c"}}`))
	f.Fuzz(func(t *testing.T, r uint8, body []byte) {
		route := fuzzRoute(r)
		// Small limits so that the fuzzer reaches them.
		lim := Limits{MaxMessageBytes: 4096, MaxBatchBytes: 16384, MaxProperties: 8, MaxTraits: 8}
		orig := bytes.Clone(body)
		req, err := Decode(route, body, recv(), lim)
		if !bytes.Equal(body, orig) {
			t.Fatal("Decode modified its input")
		}
		checkDecode(t, route, body, lim, req, err)
	})
}

func checkDecode(t *testing.T, route string, body []byte, lim Limits, req *Request, err error) {
	t.Helper()
	if (err == nil) == (req == nil) {
		t.Fatalf("request %v and error %v: want exactly one", req, err)
	}
	if err != nil {
		malformed, tooLarge := errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge)
		if malformed == tooLarge {
			t.Fatalf("error %q wraps neither or both sentinels", err)
		}
		if malformed && json.Valid(body) {
			var v any
			if json.Unmarshal(body, &v) == nil {
				obj, isObj := v.(map[string]any)
				if _, isArr := obj["batch"].([]any); isObj && (route != "batch" || isArr) {
					t.Fatalf("valid JSON object refused as malformed: %v", err)
				}
			}
		}
		if tooLarge && len(body) <= lim.MaxMessageBytes {
			t.Fatalf("body of %d bytes refused as too large: %v", len(body), err)
		}
		return
	}
	// Accepted: the body is one well-formed JSON object.
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		t.Fatalf("accepted a body that is not a JSON object: %q", body)
	}
	if len(body) > lim.MaxBatchBytes {
		t.Fatalf("accepted a %d-byte body", len(body))
	}
	if route != "batch" && len(req.Items) != 1 {
		t.Fatalf("%d items on single route", len(req.Items))
	}
	var top map[string]any
	jsonOK := json.Unmarshal(body, &top) == nil // false when a number is out of range
	if jsonOK {
		if wk, _ := top["writeKey"].(string); wk != req.WriteKey {
			t.Fatalf("WriteKey %q, body has %q", req.WriteKey, wk)
		}
		if route == "batch" {
			if b, _ := top["batch"].([]any); len(b) != len(req.Items) {
				t.Fatalf("%d items for a batch of %d", len(req.Items), len(b))
			}
		}
	}
	for i, it := range req.Items {
		if it.Index != i {
			t.Fatalf("item %d has Index %d", i, it.Index)
		}
		if (it.Msg == nil) == (it.Err == nil) {
			t.Fatalf("item %d: Msg %v and Err %v: want exactly one", i, it.Msg, it.Err)
		}
		if len(it.Raw) == 0 || len(it.Raw) > lim.MaxMessageBytes || !json.Valid(it.Raw) {
			t.Fatalf("item %d: bad Raw %q", i, it.Raw)
		}
		if !bytes.Contains(body, it.Raw) {
			t.Fatalf("item %d: Raw is not part of the body", i)
		}
		if it.Err != nil {
			if it.Err.Error() == "" {
				t.Fatalf("item %d: empty error", i)
			}
			continue
		}
		checkMessage(t, i, route, it, lim)
	}
}

// checkMessage checks a valid message against the validation rules and,
// independently, against encoding/json's reading of its Raw bytes.
func checkMessage(t *testing.T, i int, route string, it Item, lim Limits) {
	t.Helper()
	m := it.Msg
	if !bytes.Equal(m.Raw, it.Raw) || m.MessageID != it.MessageID {
		t.Fatalf("item %d: Msg.Raw/MessageID differ from the Item's", i)
	}
	if route != "batch" && string(m.Type) != route {
		t.Fatalf("item %d: type %q on route %s", i, m.Type, route)
	}
	if !m.ReceivedAt.Equal(recv()) || m.Timestamp.IsZero() {
		t.Fatalf("item %d: times %v %v", i, m.ReceivedAt, m.Timestamp)
	}
	if m.PropertiesJSON != nil {
		// The bytes the store keeps read back as the properties.
		var back map[string]any
		if err := json.Unmarshal(m.PropertiesJSON, &back); err != nil {
			t.Fatalf("item %d: PropertiesJSON %q: %v", i, m.PropertiesJSON, err)
		}
		if !reflect.DeepEqual(back, m.Properties) {
			t.Fatalf("item %d: PropertiesJSON %q reads back as %v, not %v", i, m.PropertiesJSON, back, m.Properties)
		}
	}
	switch m.Type {
	case model.Alias:
		if m.UserID == "" || m.PreviousID == "" {
			t.Fatalf("item %d: alias without userId/previousId: %+v", i, m)
		}
	case model.Identify, model.Track, model.Page, model.Screen, model.Group:
		if m.UserID == "" && m.AnonymousID == "" {
			t.Fatalf("item %d: no id: %+v", i, m)
		}
	default:
		t.Fatalf("item %d: type %q", i, m.Type)
	}
	wantEvent := map[model.MessageType]string{model.Page: model.PageEvent, model.Screen: model.ScreenEvent, model.Group: model.GroupEvent}[m.Type]
	switch {
	case m.Type == model.Track && m.Event == "":
		t.Fatalf("item %d: track without event", i)
	case m.Type != model.Track && m.Event != wantEvent:
		t.Fatalf("item %d: %s with event %q", i, m.Type, m.Event)
	}
	if m.Type == model.Group && (m.GroupID == "" || m.Properties["groupId"] != m.GroupID) {
		t.Fatalf("item %d: group %q, properties %v", i, m.GroupID, m.Properties)
	}
	if m.Traits != nil && (len(m.Traits) == 0 || len(m.Traits) > lim.MaxTraits) {
		t.Fatalf("item %d: %d traits", i, len(m.Traits))
	}
	if m.Type == model.Track && len(m.Properties) > lim.MaxProperties {
		t.Fatalf("item %d: %d properties", i, len(m.Properties))
	}

	// The same message through encoding/json.
	var raw map[string]any
	if err := json.Unmarshal(it.Raw, &raw); err != nil {
		return // a number out of range in a field the decoder skips
	}
	str := func(k string) string {
		switch v := raw[k].(type) {
		case string:
			return v
		case float64:
			return "<number>"
		}
		return ""
	}
	for _, c := range []struct {
		key, got string
	}{{"userId", m.UserID}, {"anonymousId", m.AnonymousID}, {"messageId", m.MessageID}} {
		if want := str(c.key); want != "<number>" && want != c.got {
			t.Fatalf("item %d: %s = %q, encoding/json reads %q", i, c.key, c.got, want)
		}
	}
	if m.Type == model.Track {
		if m.Event != raw["event"] {
			t.Fatalf("item %d: event %q, encoding/json reads %v", i, m.Event, raw["event"])
		}
		want, _ := raw["properties"].(map[string]any)
		if !reflect.DeepEqual(m.Properties, want) {
			t.Fatalf("item %d: properties\n got %#v\nwant %#v", i, m.Properties, want)
		}
	}
	if m.Type == model.Identify {
		if own, ok := raw["traits"].(map[string]any); ok {
			for k, v := range own {
				if !reflect.DeepEqual(m.Traits[k], v) {
					t.Fatalf("item %d: trait %q = %#v, encoding/json reads %#v", i, k, m.Traits[k], v)
				}
			}
		}
	}
}
