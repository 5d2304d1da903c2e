package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestGoodConfig(t *testing.T) {
	c, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if c.HTTP != "0.0.0.0:9090" || time.Duration(c.Retention) != 30*24*time.Hour || c.Limits.MaxEventNames != 50 ||
		c.Limits.MaxTraits != 500 || c.Limits.BotEventsPerMinute != 600 || c.WriteKey != "write-key-123" {
		t.Errorf("loaded %+v", c)
	}
	c.ApplyEnv(func(k string) string { return map[string]string{"COHORT_WRITE_KEY": "from-env-1"}[k] })
	if c.WriteKey != "from-env-1" {
		t.Errorf("environment did not override the write key: %q", c.WriteKey)
	}
}

// TestBadConfig checks that Validate reports every problem at once, each
// in the exact words of testdata/bad.errors.
func TestBadConfig(t *testing.T) {
	c, err := Load("testdata/bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	want, _ := os.ReadFile("testdata/bad.errors")
	got := strings.Split(err.Error(), "\n")
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		found := false
		for _, g := range got {
			if g == line {
				found = true
			}
		}
		if !found {
			t.Errorf("missing error %q in:\n%v", line, err)
		}
	}
	if n := len(strings.Split(strings.TrimSpace(string(want)), "\n")); len(got) != n {
		t.Errorf("%d errors, want %d:\n%v", len(got), n, err)
	}
}

func TestUnknownKey(t *testing.T) {
	if _, err := Load("testdata/unknown.yml"); err == nil || !strings.Contains(err.Error(), "limitz") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "12h": 12 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"d", "-1d", "1.5d", "x"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%s parsed", in)
		}
	}
}
