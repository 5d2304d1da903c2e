package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func ago(d time.Duration) string { return time.Now().Add(-d).UTC().Format(time.RFC3339Nano) }

func track(user, event, ts string, props string) string {
	return fmt.Sprintf(`{"type":"track","userId":%q,"event":%q,"timestamp":%q,"properties":%s}`, user, event, ts, props)
}

func (c *client) load(msgs ...string) {
	c.t.Helper()
	r := c.ingest("batch", `{"batch":[`+strings.Join(msgs, ",")+`]}`)
	if r.Code != 200 || r.Body["success"] != true {
		c.t.Fatalf("load: %d %s", r.Code, r.Raw)
	}
}

func (c *client) api(method, path, body string) resp {
	return c.do(method, path, bearer(apiKey), []byte(body))
}

func members(t *testing.T, r resp) []string {
	t.Helper()
	var out []string
	for _, m := range r.Body["members"].([]any) {
		out = append(out, m.(string))
	}
	slices.Sort(out)
	return out
}

// articleData is the small world the articles' examples are checked on.
func articleData(c *client) {
	elec := `{"product_category":"Electronics"}`
	c.load(
		`{"type":"identify","userId":"alice","traits":{"city":"London","plan":"pro"}}`,
		`{"type":"identify","userId":"bob","traits":{"city":"Paris","plan":"pro"}}`,
		`{"type":"identify","userId":"carol","traits":{"city":"London","plan":"enterprise"}}`,
		track("alice", "Added To Cart", ago(1*time.Hour), elec),
		track("alice", "Added To Cart", ago(26*time.Hour), elec),
		track("alice", "Added To Cart", ago(50*time.Hour), elec),
		track("alice", "Song Played", ago(1*time.Hour), `{"genre":"Pop","year":2017}`),
		track("alice", "Song Played", ago(2*time.Hour), `{"genre":"Pop","year":2017}`),
		track("alice", "Song Played", ago(3*time.Hour), `{"genre":"Dream Pop","year":2017}`),
		track("alice", "App Opened", ago(40*24*time.Hour), `{}`),
		track("bob", "Added To Cart", ago(1*time.Hour), elec),
		track("bob", "Added To Cart", ago(2*time.Hour), elec),
		track("bob", "Added To Cart", ago(3*time.Hour), elec),
		track("bob", "Added To Cart", ago(4*time.Hour), elec),
		track("bob", "Song Played", ago(1*time.Hour), `{"genre":"K-Pop","year":2017}`),
		track("bob", "Song Played", ago(5*time.Hour), `{"genre":"K-Pop","year":2017}`),
		track("bob", "Song Played", ago(9*time.Hour), `{"genre":"K-Pop","year":2017}`),
		track("bob", "App Opened", ago(24*time.Hour), `{}`),
		track("bob", "Order Completed", ago(24*time.Hour), `{"total":30}`),
		track("carol", "Added To Cart", ago(1*time.Hour), elec),
		track("carol", "Added To Cart", ago(2*time.Hour), `{"product_category":"Books"}`),
		track("carol", "Added To Cart", ago(10*24*time.Hour), elec),
		track("carol", "Song Played", ago(1*time.Hour), `{"genre":"Pop","year":2016}`),
		track("carol", "Song Played", ago(2*time.Hour), `{"genre":"Pop","year":2016}`),
		track("carol", "Song Played", ago(3*time.Hour), `{"genre":"Pop","year":2016}`),
	)
}

func TestArticleExamples(t *testing.T) {
	c := start(t, nil)
	articleData(c)
	cases := []struct {
		id, cond string
		want     []string
		criteria string
	}{
		{"cart3", `{"event":"Added To Cart","where":[{"property":"product_category","op":"eq","value":"Electronics"}],"count":{"op":"eq","value":3},"within":{"last":"7d"}}`,
			[]string{"alice"}, `[map[path: size:1]]`},
		{"pop", `{"event":"Song Played","where":[{"property":"genre","op":"contains","value":"Pop"},{"property":"year","op":"eq","value":2017}],"count":{"op":"gte","value":3},"within":{"last":"1d"}}`,
			[]string{"alice", "bob"}, `[map[path: size:2]]`},
		{"lapsed", `{"not":{"event":"App Opened","within":{"last":"30d"}}}`,
			[]string{"alice", "carol"}, `[map[path:/not size:1]]`},
		{"rules", `{"and":[{"trait":"city","op":"eq","value":"London"},{"not":{"event":"Order Completed"}},{"trait":"plan","op":"in","value":["pro","enterprise"]}]}`,
			[]string{"alice", "carol"}, `[map[path:/and/0 size:2] map[path:/and/1/not size:1] map[path:/and/2 size:3]]`},
		{"except", `{"not":{"segment":"cart3"}}`, []string{"bob", "carol"}, `[map[path:/not size:1]]`},
	}
	for _, tc := range cases {
		r := c.api("POST", "/api/segments", fmt.Sprintf(`{"id":%q,"name":%q,"condition":%s}`, tc.id, tc.id, tc.cond))
		if r.Code != 201 {
			t.Fatalf("%s: create %d %s", tc.id, r.Code, r.Raw)
		}
		if r.Body["status"] != "ready" || r.Body["size"].(float64) != float64(len(tc.want)) || fmt.Sprint(r.Body["criteria"]) != tc.criteria {
			t.Errorf("%s: %s", tc.id, r.Raw)
		}
		got := members(t, c.api("GET", "/api/segments/"+tc.id+"/members", ""))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: members %v, want %v", tc.id, got, tc.want)
		}
		q := c.api("POST", "/api/query", fmt.Sprintf(`{"condition":%s,"members":true}`, tc.cond))
		if got := members(t, q); !slices.Equal(got, tc.want) || fmt.Sprint(q.Body["criteria"]) != tc.criteria {
			t.Errorf("%s: query %s", tc.id, q.Raw)
		}
	}
	u := c.user("alice")
	if fmt.Sprint(u.Body["segments"]) != "[cart3 lapsed pop rules]" {
		t.Errorf("alice's segments %v", u.Body["segments"])
	}

	// Real time: a fourth cart event makes alice leave cart3, and so
	// enter "except"; Order Completed makes carol leave "rules".
	c.load(track("alice", "Added To Cart", ago(time.Minute), `{"product_category":"Electronics"}`),
		track("carol", "Order Completed", ago(time.Minute), `{}`))
	if got := members(t, c.api("GET", "/api/segments/cart3/members", "")); len(got) != 0 {
		t.Errorf("cart3 after the 4th event: %v", got)
	}
	if got := members(t, c.api("GET", "/api/segments/except/members", "")); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Errorf("except after alice left cart3: %v", got)
	}
	r := c.do("GET", "/api/changes?since=0", map[string]string{"Authorization": "Bearer " + apiKey, "Accept": "application/json"}, nil)
	var log []string
	for _, x := range r.Body["changes"].([]any) {
		ch := x.(map[string]any)
		log = append(log, fmt.Sprintf("%v %v %v %v %v", ch["seq"], ch["segment"], ch["user"], ch["change"], ch["reason"]))
	}
	tail := strings.Join(log[len(log)-3:], "\n")
	// 9 build enters, then alice's changes (cart3 before except, which
	// refers to it), then carol's.
	want := "10 cart3 alice exit event\n11 except alice enter event\n12 rules carol exit event"
	if tail != want || len(log) != 12 || r.Body["next"].(float64) != 12 {
		t.Errorf("change log tail:\n%s\nwant:\n%s\n(all: %d, next %v)", tail, want, len(log), r.Body["next"])
	}
	r = c.do("GET", "/api/changes?since=0&segment=pop", map[string]string{"Authorization": "Bearer " + apiKey, "Accept": "application/json"}, nil)
	if n := len(r.Body["changes"].([]any)); n != 2 {
		t.Errorf("pop changes: %d, want its 2 build enters", n)
	}
}

func TestSegmentCRUDAndErrors(t *testing.T) {
	c := start(t, nil)
	c.load(`{"type":"identify","userId":"u1","traits":{"age":30}}`)
	bad := []struct{ body, path string }{
		{`{"name":"x","condition":{"trait":"age","op":"bigger","value":3}}`, "/op"},
		{`{"name":"x","condition":{"and":[{"all":true},{"trait":"age","op":"gt","value":[1]}]}}`, "/and/1/value"},
		{`{"name":"x","condition":{"or":[{"all":true},{"event":"E","count":{"op":"gte","value":-1}}]}}`, "/or/1/count/value"},
		{`{"name":"x","condition":{"segment":"nope"}}`, ""},
		{`{"name":"x"}`, "/condition"},
		{`{"name":"x","condition":{"all":true},"extra":1}`, ""},
	}
	for _, b := range bad {
		r := c.api("POST", "/api/segments", b.body)
		if r.Code != 400 || r.Body["error"] == nil {
			t.Errorf("%s: %d %s", b.body, r.Code, r.Raw)
			continue
		}
		if b.path != "" && r.Body["path"] != b.path {
			t.Errorf("%s: path %v, want %s", b.body, r.Body["path"], b.path)
		}
	}
	if r := c.api("POST", "/api/segments", `{"id":"a","name":"A","condition":{"all":true}}`); r.Code != 201 {
		t.Fatalf("create a: %s", r.Raw)
	}
	if r := c.api("POST", "/api/segments", `{"id":"a","name":"A","condition":{"all":true}}`); r.Code != 409 {
		t.Errorf("duplicate id: %d", r.Code)
	}
	if r := c.api("POST", "/api/segments", `{"id":"b","name":"B","condition":{"segment":"a"}}`); r.Code != 201 || r.Body["size"].(float64) != 1 {
		t.Fatalf("create b: %s", r.Raw)
	}
	// a → b → a would be a cycle.
	if r := c.api("PUT", "/api/segments/a", `{"name":"A","condition":{"not":{"segment":"b"}}}`); r.Code != 400 || r.Body["path"] != "/not" {
		t.Errorf("cycle: %d %s", r.Code, r.Raw)
	}
	if r := c.api("DELETE", "/api/segments/a", ``); r.Code != 409 {
		t.Errorf("delete a segment in use: %d %s", r.Code, r.Raw)
	}
	if r := c.api("PUT", "/api/segments/a", `{"name":"Adults","condition":{"trait":"age","op":"gte","value":40}}`); r.Code != 200 || r.Body["size"].(float64) != 0 || r.Body["name"] != "Adults" {
		t.Errorf("edit: %s", r.Raw)
	}
	if r := c.api("GET", "/api/segments/b", ``); r.Body["size"].(float64) != 0 {
		t.Errorf("b after a was edited: %s", r.Raw)
	}
	if r := c.api("GET", "/api/segments", ``); len(r.Body["segments"].([]any)) != 2 {
		t.Errorf("list: %s", r.Raw)
	}
	for _, id := range []string{"b", "a"} {
		if r := c.api("DELETE", "/api/segments/"+id, ``); r.Code != 204 {
			t.Errorf("delete %s: %d %s", id, r.Code, r.Raw)
		}
	}
	if r := c.api("GET", "/api/segments/a", ``); r.Code != 404 {
		t.Errorf("get deleted: %d", r.Code)
	}
}

func TestMembersPaging(t *testing.T) {
	c := start(t, nil)
	var msgs []string
	for i := range 250 {
		msgs = append(msgs, fmt.Sprintf(`{"type":"identify","userId":"user-%03d","traits":{"n":%d}}`, i, i))
	}
	c.load(msgs...)
	c.api("POST", "/api/segments", `{"id":"even","name":"even","condition":{"trait":"n","op":"lt","value":200}}`)
	seen := map[string]int{}
	cursor := ""
	pages := 0
	for {
		path := "/api/segments/even/members?limit=64"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := c.api("GET", path, "")
		if r.Code != 200 {
			t.Fatalf("%s: %s", path, r.Raw)
		}
		for _, m := range r.Body["members"].([]any) {
			seen[m.(string)]++
		}
		pages++
		// Changes between pages must not make anyone appear twice.
		if pages == 2 {
			c.load(`{"type":"identify","userId":"user-010","traits":{"n":500}}`, `{"type":"identify","userId":"user-220","traits":{"n":1}}`)
		}
		if r.Body["next_cursor"] == nil {
			break
		}
		cursor = r.Body["next_cursor"].(string)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s appeared %d times", id, n)
		}
	}
	if len(seen) < 199 || pages != 4 {
		t.Errorf("%d members over %d pages", len(seen), pages)
	}
	if r := c.api("GET", "/api/segments/even/members?cursor=!!", ""); r.Code != 400 {
		t.Errorf("bad cursor: %d", r.Code)
	}
}

func TestChangesSSE(t *testing.T) {
	c := start(t, nil)
	c.load(`{"type":"identify","userId":"u1","traits":{"vip":true}}`, `{"type":"identify","userId":"u2","traits":{"vip":false}}`)
	c.api("POST", "/api/segments", `{"id":"vip","name":"VIP","condition":{"trait":"vip","op":"eq","value":true}}`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	read := func(lastID string, n int) []string {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.url+"/api/changes?since=0", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		var got []string
		sc := bufio.NewScanner(res.Body)
		id := ""
		for sc.Scan() && len(got) < n {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				got = append(got, id+" "+strings.TrimPrefix(line, "data: "))
			}
		}
		return got
	}
	first := read("", 1)
	if len(first) != 1 || !strings.HasPrefix(first[0], `1 {"seq":1,"segment":"vip","user":"u1","change":"enter"`) {
		t.Fatalf("first event %v", first)
	}
	// A live change arrives on an open stream, and a reconnect resumes
	// after Last-Event-ID.
	done := make(chan []string)
	go func() { done <- read("1", 1) }()
	c.load(`{"type":"identify","userId":"u2","traits":{"vip":true}}`)
	got := <-done
	if len(got) != 1 || !strings.HasPrefix(got[0], `2 {"seq":2,"segment":"vip","user":"u2","change":"enter"`) || !strings.Contains(got[0], `"reason":"trait"`) {
		t.Fatalf("resumed stream %v", got)
	}
}
