// Package config owns Cohort's configuration: one struct with defaults, a
// YAML file format, and a Validate that reports every problem at once.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cohortdb/cohort/internal/condition"
)

// Config is the whole server configuration. Zero fields take defaults.
type Config struct {
	HTTP      string   `yaml:"http"`      // listen address
	Data      string   `yaml:"data"`      // data directory
	LogLevel  string   `yaml:"log_level"` // debug, info, warn, error
	Retention Duration `yaml:"retention"` // events older than this disappear
	// ChangeLogHorizon: changes older than this keep only the latest of
	// each (segment, user) (never past a sink's cursor); 0 keeps all.
	ChangeLogHorizon Duration `yaml:"change_log_horizon"`
	Limits           Limits   `yaml:"limits"`
	// Index: how each workspace's index is persisted under data/index.
	Index Index `yaml:"index"`
	// Keys of the default workspace; the environment (COHORT_WRITE_KEY,
	// COHORT_API_KEY, COHORT_ADMIN_KEY) overrides them.
	WriteKey string `yaml:"write_key"`
	APIKey   string `yaml:"api_key"`
	AdminKey string `yaml:"admin_key"`
	// Sources feed workspaces from Kafka topics and MySQL binlogs.
	Sources []Source `yaml:"sources"`
}

// Index says when the index's checkpoint is written: the events since the
// last one are what a start replays, and a checkpoint holds the applier
// while it rewrites the checkpoint file.
type Index struct {
	CheckpointEvents   int      `yaml:"checkpoint_events"`   // events since the last checkpoint
	CheckpointInterval Duration `yaml:"checkpoint_interval"` // time since the last one, when anything changed
	// PartialCacheBytes bounds, per workspace, the partial aggregates of
	// parts that event scans keep (0: none).
	PartialCacheBytes int `yaml:"partial_cache_bytes"`
}

// Limits protect a workspace from clients that misbehave.
type Limits struct {
	MaxEventNames   int     `yaml:"max_event_names"`   // distinct event names per workspace
	MaxProperties   int     `yaml:"max_properties"`    // properties per event
	MaxTraits       int     `yaml:"max_traits"`        // traits per profile
	MaxMessageBytes int     `yaml:"max_message_bytes"` // one message
	MaxBatchBytes   int     `yaml:"max_batch_bytes"`   // one request body
	EventsPerSecond float64 `yaml:"events_per_second"` // per workspace; 0 is unlimited
	Burst           int     `yaml:"burst"`             // events allowed at once above the rate
	// BotEventsPerMinute flags a profile sending more events than this in
	// one minute with the trait "$bot" and throttles its re-evaluation
	// (its events are all kept); 0 disables.
	BotEventsPerMinute int `yaml:"bot_events_per_minute"`
	// MaxIngestWait: a /v1 request whose messages the applier has not taken
	// within it is answered 503 with Retry-After, and nothing of it is
	// stored.
	MaxIngestWait Duration `yaml:"max_ingest_wait"`
	// MaxAPIBodyBytes caps an /api/* request body (segment definitions,
	// queries, sinks); over it the request is answered 413.
	MaxAPIBodyBytes int `yaml:"max_api_body_bytes"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTP:      "127.0.0.1:8080",
		Data:      "./cohort-data",
		LogLevel:  "info",
		Retention: Duration(90 * 24 * time.Hour),

		ChangeLogHorizon: Duration(7 * 24 * time.Hour),
		Index:            Index{CheckpointEvents: 1_000_000, CheckpointInterval: Duration(5 * time.Minute), PartialCacheBytes: 512 << 20},
		Limits: Limits{
			MaxEventNames:      1000,
			MaxProperties:      255,
			MaxTraits:          500,
			MaxMessageBytes:    32 * 1024,
			MaxBatchBytes:      500 * 1024,
			BotEventsPerMinute: 1200,
			MaxIngestWait:      Duration(5 * time.Second),
			MaxAPIBodyBytes:    1 << 20,
		},
	}
}

// Load reads a YAML file over the defaults. Unknown keys, wrong types and
// bad durations are all reported, joined, each with its line and key path;
// what did decode is returned with the error, so the caller can join
// Validate's problems to it (see Check).
func Load(path string) (Config, error) {
	c := Default()
	src, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	if err := decodeYAML(src, &c); err != nil {
		return c, fmt.Errorf("config %s:\n%w", path, err)
	}
	return c, nil
}

// Check joins a Load error (may be nil) with c's Validate problems, so a
// file's every problem is reported at once.
func Check(c *Config, loadErr error) error {
	verr := c.Validate()
	switch {
	case loadErr == nil:
		return verr
	case verr == nil:
		return loadErr
	}
	return fmt.Errorf("%w\n%w", loadErr, verr)
}

// ApplyEnv takes the keys from the environment when set.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv("COHORT_WRITE_KEY"); v != "" {
		c.WriteKey = v
	}
	if v := getenv("COHORT_API_KEY"); v != "" {
		c.APIKey = v
	}
	if v := getenv("COHORT_ADMIN_KEY"); v != "" {
		c.AdminKey = v
	}
}

// Validate reports every problem in c, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.HTTP == "" {
		bad("http: listen address is empty")
	}
	if c.Data == "" {
		bad("data: directory is empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.Retention < Duration(24*time.Hour) {
		bad("retention: %s is less than a day; events are deleted a whole day at a time, so give at least 1d", c.Retention)
	}
	positive := func(name string, v int) {
		if v <= 0 {
			bad("limits.%s: %d must be positive", name, v)
		}
	}
	positive("max_event_names", c.Limits.MaxEventNames)
	positive("max_properties", c.Limits.MaxProperties)
	positive("max_traits", c.Limits.MaxTraits)
	positive("max_message_bytes", c.Limits.MaxMessageBytes)
	positive("max_batch_bytes", c.Limits.MaxBatchBytes)
	positive("max_api_body_bytes", c.Limits.MaxAPIBodyBytes)
	if c.Limits.MaxMessageBytes > c.Limits.MaxBatchBytes && c.Limits.MaxBatchBytes > 0 {
		bad("limits.max_message_bytes: %d is over max_batch_bytes %d", c.Limits.MaxMessageBytes, c.Limits.MaxBatchBytes)
	}
	if c.Limits.EventsPerSecond < 0 {
		bad("limits.events_per_second: %g must not be negative", c.Limits.EventsPerSecond)
	}
	if c.ChangeLogHorizon < 0 {
		bad("change_log_horizon: %s must not be negative", time.Duration(c.ChangeLogHorizon))
	}
	if c.Index.CheckpointEvents < 1 {
		bad("index.checkpoint_events: %d must be at least 1", c.Index.CheckpointEvents)
	}
	if c.Index.PartialCacheBytes < 0 {
		bad("index.partial_cache_bytes: %d must not be negative", c.Index.PartialCacheBytes)
	}
	if c.Index.CheckpointInterval < Duration(time.Second) {
		bad("index.checkpoint_interval: %s must be at least 1s", time.Duration(c.Index.CheckpointInterval))
	}
	if c.Limits.BotEventsPerMinute < 0 {
		bad("limits.bot_events_per_minute: %d must not be negative", c.Limits.BotEventsPerMinute)
	}
	if c.Limits.MaxIngestWait <= 0 {
		bad("limits.max_ingest_wait: %s must be positive", time.Duration(c.Limits.MaxIngestWait))
	}
	if c.Limits.Burst < 0 {
		bad("limits.burst: %d must not be negative", c.Limits.Burst)
	}
	for _, key := range []struct{ name, k string }{{"write_key", c.WriteKey}, {"api_key", c.APIKey}, {"admin_key", c.AdminKey}} {
		name, k := key.name, key.k
		if k != "" && len(k) < 8 {
			bad("%s: a key must have at least 8 characters", name)
		}
		if strings.ContainsAny(k, ": \t\n") {
			bad("%s: a key must not contain spaces or colons", name)
		}
	}
	errs = append(errs, validateSources(c.Sources)...)
	return errors.Join(errs...)
}

// Duration is a time.Duration that YAML writes in the condition language's
// syntax: a whole number and one unit, s, m, h, d (day) or w (week), as in
// "90d", "2w" or "12h".
type Duration time.Duration

// UnmarshalYAML accepts the condition duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like 90d, 2w or 12h, got a %s", map[yaml.Kind]string{yaml.SequenceNode: "list", yaml.MappingNode: "mapping"}[n.Kind])
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// String writes d in the largest unit that divides it ("90d", "2w", "36h").
func (d Duration) String() string {
	v := time.Duration(d)
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if v > 0 && v%u.unit == 0 {
			return fmt.Sprintf("%d%s", v/u.unit, u.name)
		}
	}
	return v.String()
}

// ParseDuration parses the condition duration syntax ("90d", "2w", "12h";
// see condition.ParseDuration), "0", and, for what that syntax cannot say,
// Go's ("1h30m", "500ms"); it names what it wants when s is none of them.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if v, err := condition.ParseDuration(s); err == nil {
		return v, nil
	}
	if v, err := time.ParseDuration(s); err == nil && v > 0 {
		return v, nil
	}
	return 0, fmt.Errorf("want a duration like 90d, 2w or 12h (a whole number and one unit s, m, h, d or w), got %q", s)
}
