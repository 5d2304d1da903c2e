package source

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/config"
)

// What the external tests (package source_test, which run the whole
// server) use of this package's test helpers.

// MariaDB is a private MariaDB server for a test.
type MariaDB struct{ db *mariaDB }

func StartMariaDB(t *testing.T) MariaDB                                   { return MariaDB{startMariaDB(t)} }
func (m MariaDB) Addr() string                                            { return m.db.addr() }
func (m MariaDB) Exec(stmts ...string)                                    { m.db.exec(stmts...) }
func ShopSchema() []string                                                { return shopSchema }
func ShopTables() []config.Table                                          { return shopTables() }
func ReadFixture(t *testing.T, name string) []*kgo.Record                 { return readFixture(t, name) }
func NewCluster(t *testing.T, topic string) *kfake.Cluster                { return newCluster(t, topic, 1) }
func Produce(t *testing.T, c *kfake.Cluster, topic string, r *kgo.Record) { produce(t, c, topic, r) }
func WaitFor(t *testing.T, what string, cond func() bool)                 { waitFor(t, what, 20e9, cond) }
