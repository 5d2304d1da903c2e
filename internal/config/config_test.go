package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bad.errors from the current output")

func TestGoodConfig(t *testing.T) {
	c, err := Load("testdata/good.yml")
	if err := Check(&c, err); err != nil {
		t.Fatalf("good config: %v", err)
	}
	if c.HTTP != "0.0.0.0:9090" || time.Duration(c.Retention) != 30*24*time.Hour || c.Limits.MaxEventNames != 50 ||
		c.Limits.MaxTraits != 500 || c.Limits.BotEventsPerMinute != 600 || c.WriteKey != "write-key-123" ||
		c.Limits.MaxAPIBodyBytes != 1<<20 {
		t.Errorf("loaded %+v", c)
	}
	c.ApplyEnv(func(k string) string { return map[string]string{"COHORT_WRITE_KEY": "from-env-1"}[k] })
	if c.WriteKey != "from-env-1" {
		t.Errorf("environment did not override the write key: %q", c.WriteKey)
	}
}

func TestWeeksConfig(t *testing.T) {
	c, err := Load("testdata/weeks.good.yml")
	if err := Check(&c, err); err != nil {
		t.Fatalf("weeks config: %v", err)
	}
	if time.Duration(c.Retention) != 14*24*time.Hour || c.Retention.String() != "2w" || c.Limits.MaxAPIBodyBytes != 65536 {
		t.Errorf("loaded retention %v, max_api_body_bytes %d", c.Retention, c.Limits.MaxAPIBodyBytes)
	}
}

// TestBadConfigs loads every testdata/*.bad.yml and compares everything
// reported (decoding and Validate, joined as `cohort serve` reports them)
// with its .bad.errors file, exactly. go test -update rewrites them.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) < 5 {
		t.Fatalf("only %d bad fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			err = Check(&c, err)
			if err == nil {
				t.Fatal("bad config accepted")
			}
			got := err.Error() + "\n"
			want := strings.TrimSuffix(f, ".yml") + ".errors"
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(exp) {
				t.Errorf("errors differ from %s\ngot:\n%s\nwant:\n%s", want, got, exp)
			}
		})
	}
}

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "12h": 12 * time.Hour, "2w": 14 * 24 * time.Hour, "30m": 30 * time.Minute,
		"0": 0, "1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"d", "-1d", "1.5d", "x", "90 d", "", "-5s", "0s0", "2 weeks"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%s parsed", in)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"max_event_names", "max_properties", "max_traits", "burst"}
	for key, want := range map[string]string{"max_event_name": "max_event_names", "max_trait": "max_traits", "brust": "burst", "frobnicate": "", "max_propertys": "max_properties"} {
		if got := suggest(key, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
