package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Rows of the peers' tables, JSON already encoded.
type profileRow struct {
	num    int32
	id     string
	traits []byte
}

type eventRow struct {
	num   int32
	name  string
	ts    time.Time
	props []byte
}

type patchRow = profileRow

type rowBatch struct {
	profiles []profileRow
	events   []eventRow
	patches  []patchRow
}

// stream walks d in a goroutine that also encodes the JSON, and hands
// the rows over in batches, so that generation overlaps with the engine's
// load. wait returns the walk's error once the channel is closed; a
// consumer that stops early cancels ctx first.
func stream(ctx context.Context, d Data, batch int) (<-chan rowBatch, func() error) {
	ch := make(chan rowBatch, 4)
	errc := make(chan error, 1)
	send := func(ctx context.Context, b rowBatch) error {
		select {
		case ch <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() {
		defer close(ch)
		_, err := d.Walk(ctx, batch, Sink{
			Profiles: func(ctx context.Context, ps []Profile) error {
				rows := make([]profileRow, len(ps))
				for i, p := range ps {
					b, err := json.Marshal(p.Traits)
					if err != nil {
						return fmt.Errorf("encode traits of profile %d: %w", p.Num, err)
					}
					rows[i] = profileRow{num: int32(p.Num), id: p.ID, traits: b}
				}
				return send(ctx, rowBatch{profiles: rows})
			},
			Events: func(ctx context.Context, es []Event, patches []Patch) error {
				rows := make([]eventRow, len(es))
				for i, e := range es {
					b, err := json.Marshal(e.Props)
					if err != nil {
						return fmt.Errorf("encode properties of an event: %w", err)
					}
					rows[i] = eventRow{num: int32(e.Num), name: e.Name, ts: e.Time, props: b}
				}
				var ps []patchRow
				for _, p := range slices.Clone(patches) {
					b, err := json.Marshal(p.Traits)
					if err != nil {
						return fmt.Errorf("encode traits of profile %d: %w", p.Num, err)
					}
					ps = append(ps, patchRow{num: int32(p.Num), id: p.ID, traits: b})
				}
				return send(ctx, rowBatch{events: rows, patches: ps})
			},
		})
		errc <- err
	}()
	return ch, func() error { return <-errc }
}

// consume streams d into fn, batch by batch. When fn fails, the walk stops.
func consume(ctx context.Context, d Data, batch int, fn func(rowBatch) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, wait := stream(ctx, d, batch)
	var ferr error
	for b := range ch {
		if ferr != nil {
			continue // drain until the walk notices the cancellation
		}
		if ferr = fn(b); ferr != nil {
			cancel()
		}
	}
	werr := wait()
	if ferr != nil {
		return ferr
	}
	return werr
}
