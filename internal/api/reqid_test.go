package api

import (
	"strings"
	"testing"
	"time"
)

func TestNewRequestID(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	a, b := newRequestID(t0), newRequestID(t0.Add(time.Millisecond))
	if len(a) != 26 || strings.Trim(a, crockford) != "" {
		t.Fatalf("id %q is not 26 Crockford base32 characters", a)
	}
	if !(a < b) {
		t.Errorf("ids do not sort by time: %s then %s", a, b)
	}
	// The first 10 characters are the time: 1700000000000 ms.
	if a[:10] != "01HF7YAT00" {
		t.Errorf("time prefix %s", a[:10])
	}
	if c := newRequestID(t0); c == a {
		t.Errorf("two ids in one millisecond are equal: %s", c)
	}
}
