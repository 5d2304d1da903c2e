package source

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"golang.org/x/time/rate"

	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/model"
)

// deriver keeps derived traits current: when rows of a table a derived
// trait names change, the trait's query runs for each changed row's user
// (batched every 100 ms, at most 500 queries a second) and its answer is
// set as the trait (NULL or no row: the trait is unset).
type deriver struct {
	m   *mysqlSource
	lim *rate.Limiter

	mu      sync.Mutex
	pending map[derivedKey]bool
}

type derivedKey struct {
	trait int // index in the source's derived list
	user  string
}

func newDeriver(m *mysqlSource) *deriver {
	return &deriver{m: m, lim: rate.NewLimiter(500, 50), pending: map[derivedKey]bool{}}
}

// rowsChanged queues the derived traits of the users whose rows of table
// changed.
func (d *deriver) rowsChanged(table string, users []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, dv := range d.m.s.cfg.Derived {
		if !slices.Contains(dv.Tables, table) {
			continue
		}
		for _, u := range users {
			d.pending[derivedKey{i, u}] = true
		}
	}
}

func (d *deriver) take() []derivedKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]derivedKey, 0, len(d.pending))
	for k := range d.pending {
		out = append(out, k)
	}
	clear(d.pending)
	return out
}

func (d *deriver) run(ctx context.Context, stop chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var conn *client.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keys := d.take()
		if len(keys) == 0 {
			continue
		}
		if conn == nil {
			var err error
			if conn, err = d.m.connect(ctx); err != nil {
				d.requeue(keys)
				d.m.s.log.Warn("derived traits: cannot connect", "err", err)
				continue
			}
		}
		if err := d.compute(ctx, conn, keys); err != nil {
			d.requeue(keys)
			conn.Close()
			conn = nil
			if ctx.Err() == nil {
				d.m.s.log.Warn("derived traits", "err", err)
			}
		}
	}
}

func (d *deriver) requeue(keys []derivedKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		d.pending[k] = true
	}
}

// compute runs the queries and submits the traits in one submission.
func (d *deriver) compute(ctx context.Context, conn *client.Conn, keys []derivedKey) error {
	now := d.m.s.mgr.opts.Now().UTC()
	var items []message.Item
	for i, k := range keys {
		if err := d.lim.Wait(ctx); err != nil {
			return err
		}
		dv := d.m.s.cfg.Derived[k.trait]
		res, err := conn.Execute(dv.Query, k.user)
		if err != nil {
			return fmt.Errorf("derived trait %s for user %s: %w", dv.Trait, k.user, err)
		}
		msg := &model.Message{Type: model.Identify, UserID: k.user, Timestamp: now, ReceivedAt: now}
		var v any
		if res.Resultset != nil && res.RowNumber() > 0 && res.ColumnNumber() > 0 {
			v, _ = res.GetValue(0, 0)
		}
		res.Close()
		if v == nil {
			msg.Unset = []string{dv.Trait}
		} else {
			msg.Traits = map[string]any{dv.Trait: convert(v, "decimal")}
		}
		items = append(items, message.Item{Index: i, Msg: msg, Raw: []byte(`{}`), Origin: "derived:" + dv.Trait})
	}
	_, err := d.m.s.submit(ctx, items, nil)
	return err
}

// connect opens a connection to the source database for queries.
func (m *mysqlSource) connect(ctx context.Context) (*client.Conn, error) {
	c, err := client.ConnectWithContext(ctx, m.s.cfg.Addr, m.s.cfg.User, m.s.cfg.Password, "", 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", m.s.cfg.Addr, err)
	}
	return c, nil
}
