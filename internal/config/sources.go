package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Source is one configured source: a Kafka topic set or a MySQL/MariaDB
// binlog, feeding one workspace (see docs/sources.md).
type Source struct {
	Name      string `yaml:"name"`
	Kind      string `yaml:"kind"`      // kafka or mysql
	Workspace string `yaml:"workspace"` // default: the default workspace
	// RatePerSecond caps the records (rows) applied per second; 0 is
	// unlimited.
	RatePerSecond float64 `yaml:"rate"`

	// Kafka.
	Brokers []string `yaml:"brokers"`
	Topics  []string `yaml:"topics"`
	Group   string   `yaml:"group"`  // consumer group; default "cohort-<name>"
	Format  string   `yaml:"format"` // segment, maxwell or debezium

	// MySQL/MariaDB: address, a user with SELECT, REPLICATION SLAVE,
	// BINLOG MONITOR and REPLICATION SLAVE ADMIN, and a server id unique
	// among the server's replicas.
	Addr     string `yaml:"addr"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	ServerID uint32 `yaml:"server_id"` // default 1001
	Flavor   string `yaml:"flavor"`    // mariadb (default) or mysql
	// BootstrapRowsPerSecond throttles the bootstrap lane (default 20,000).
	BootstrapRowsPerSecond float64 `yaml:"bootstrap_rate"`

	// Tables map change-stream rows to profiles (maxwell, debezium, mysql).
	Tables []Table `yaml:"tables"`
	// Derived are traits computed by SQL against the source database
	// (mysql only).
	Derived []Derived `yaml:"derived"`
}

// Table maps one table's rows to profiles.
type Table struct {
	Name   string `yaml:"name"`    // "database.table"
	UserID string `yaml:"user_id"` // the column holding the user id
	// As is "traits" (default: columns become traits) or "events" (inserts
	// become track events named Event, columns their properties).
	As    string `yaml:"as"`
	Event string `yaml:"event"` // default: the table name
	// Columns maps column → trait (or property) name; empty: every column
	// but the user id, under its own name.
	Columns map[string]string `yaml:"columns"`
	// Types declares column types where the stream does not carry them
	// (maxwell, debezium): datetime, timestamp, date, decimal, boolean,
	// json, number, string. The binlog source reads them from the schema.
	Types map[string]string `yaml:"types"`
	// OnDelete is "unset" (default: remove the row's traits) or "erase"
	// (erase the profile, as DELETE /api/users).
	OnDelete string `yaml:"on_delete"`
	// PrimaryKey is the column the bootstrap lane scans by (default: the
	// table's primary key, or "id").
	PrimaryKey string `yaml:"primary_key"`
}

// Derived is a trait computed by a query returning one value, with "?"
// bound to the user id, recomputed when rows of Tables change.
type Derived struct {
	Trait  string   `yaml:"trait"`
	Query  string   `yaml:"query"`
	Tables []string `yaml:"tables"`
}

// validateSources reports every problem of the sources list.
func validateSources(srcs []Source) []error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range srcs {
		at := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" {
			at = fmt.Sprintf("sources[%d] (%s)", i, s.Name)
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf(at+": "+format, args...))
		}
		switch {
		case s.Name == "":
			bad("name is empty")
		case strings.ContainsAny(s.Name, "/: \t"):
			bad("name %q must not contain slashes, colons or spaces", s.Name)
		case seen[s.Name]:
			bad("name %q is used twice", s.Name)
		}
		seen[s.Name] = true
		if s.RatePerSecond < 0 {
			bad("rate: %g must not be negative", s.RatePerSecond)
		}
		switch s.Kind {
		case "kafka":
			if len(s.Brokers) == 0 {
				bad("brokers: a kafka source needs at least one broker")
			}
			if len(s.Topics) == 0 {
				bad("topics: a kafka source needs at least one topic")
			}
			switch s.Format {
			case "segment":
			case "maxwell", "debezium":
				if len(s.Tables) == 0 {
					bad("tables: format %s needs at least one table mapping", s.Format)
				}
			default:
				bad("format: %q is not one of segment, maxwell, debezium", s.Format)
			}
			if len(s.Derived) > 0 {
				bad("derived: derived traits need a mysql source (they query its database)")
			}
		case "mysql":
			if s.Addr == "" {
				bad("addr: a mysql source needs the server's host:port")
			}
			if s.User == "" {
				bad("user: a mysql source needs a user")
			}
			if len(s.Tables) == 0 {
				bad("tables: a mysql source needs at least one table mapping")
			}
			switch s.Flavor {
			case "", "mariadb", "mysql":
			default:
				bad("flavor: %q is not mariadb or mysql", s.Flavor)
			}
		default:
			bad("kind: %q is not kafka or mysql", s.Kind)
		}
		tables := map[string]bool{}
		for j, t := range s.Tables {
			tat := fmt.Sprintf("tables[%d]", j)
			if !strings.Contains(t.Name, ".") {
				bad("%s.name: %q must be database.table", tat, t.Name)
			}
			tables[t.Name] = true
			if t.UserID == "" {
				bad("%s.user_id: name the column holding the user id", tat)
			}
			switch t.As {
			case "", "traits", "events":
			default:
				bad("%s.as: %q is not traits or events", tat, t.As)
			}
			switch t.OnDelete {
			case "", "unset", "erase":
			default:
				bad("%s.on_delete: %q is not unset or erase", tat, t.OnDelete)
			}
			for _, col := range slices.Sorted(maps.Keys(t.Types)) {
				switch ty := t.Types[col]; ty {
				case "datetime", "timestamp", "date", "decimal", "boolean", "json", "number", "string":
				default:
					bad("%s.types.%s: %q is not one of datetime, timestamp, date, decimal, boolean, json, number, string", tat, col, ty)
				}
			}
		}
		for j, d := range s.Derived {
			dat := fmt.Sprintf("derived[%d]", j)
			if d.Trait == "" {
				bad("%s.trait is empty", dat)
			}
			if strings.Count(d.Query, "?") != 1 {
				bad("%s.query: must have exactly one ? (bound to the user id)", dat)
			}
			if len(d.Tables) == 0 {
				bad("%s.tables: name the tables whose changes recompute it", dat)
			}
			for _, t := range d.Tables {
				if !tables[t] {
					bad("%s.tables: %q has no table mapping (its user id column must be known)", dat, t)
				}
			}
		}
	}
	return errs
}
