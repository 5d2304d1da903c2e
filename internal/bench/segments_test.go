package bench

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
)

// rawData collects a walk of d: every profile's final traits and events,
// the oracle's input.
func rawData(t testing.TB, d Data) []oracle.Input {
	t.Helper()
	in := make([]oracle.Input, d.Profiles)
	_, err := d.Walk(context.Background(), 1000, Sink{
		Profiles: func(_ context.Context, ps []Profile) error {
			for _, p := range ps {
				in[p.Num].Traits = maps.Clone(p.Traits)
			}
			return nil
		},
		Events: func(_ context.Context, es []Event, patches []Patch) error {
			for _, e := range es {
				in[e.Num].Events = append(in[e.Num].Events, model.Event{Name: e.Name, Timestamp: e.Time, Properties: e.Props})
			}
			for _, p := range patches {
				maps.Copy(in[p.Num].Traits, p.Traits)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestSuiteAgainstOracle loads a small data set with the benchmark's loader
// and checks every suite case's members against the brute-force oracle
// evaluated from the raw generated data: the loader and the suite are what
// the benchmark figures are about. Both arrival orders: in timestamp
// order the event blocks' time bounds skip what a window excludes.
func TestSuiteAgainstOracle(t *testing.T) {
	for _, inOrder := range []bool{false, true} {
		t.Run(fmt.Sprintf("inOrder=%v", inOrder), func(t *testing.T) {
			testSuiteAgainstOracle(t, Data{Profiles: 1500, Events: 30000, Seed: 3, InOrder: inOrder}, 0)
		})
	}
	// Persisted while loading, as the server does (a checkpoint every
	// 2,000 events, parts merged), then reopened from the files.
	t.Run("persisted", func(t *testing.T) {
		testSuiteAgainstOracle(t, Data{Profiles: 1500, Events: 30000, Seed: 3, InOrder: true}, 2000)
	})
}

func testSuiteAgainstOracle(t *testing.T, d Data, checkpointEvents int) {
	suite, err := ParseSuite(Suite)
	if err != nil {
		t.Fatal(err)
	}
	if len(suite) < 15 {
		t.Fatalf("the suite has %d conditions, want at least 15", len(suite))
	}
	var store *IndexStore
	if checkpointEvents > 0 {
		if store, err = OpenIndexStore(filepath.Join(t.TempDir(), "ix"), checkpointEvents); err != nil {
			t.Fatal(err)
		}
		store.Unthrottled = true
		defer store.Close()
	}
	ix, st, err := LoadCohort(context.Background(), d, LoadOptions{Batch: 777, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if store != nil {
		re, _, err := PersistAndReopen(context.Background(), ix, store)
		if err != nil {
			t.Fatal(err)
		}
		defer re.Close()
		if store.Checkpoints < 10 || store.PartMerges < 3 {
			t.Fatalf("%d checkpoints and %d merged parts while loading: the test must cover more", store.Checkpoints, store.PartMerges)
		}
		ix = re
	}
	if !d.InOrder {
		ix.SetScanParallel(3, 1, 0) // every scan split over three workers
	}
	if st.Events == 0 || st.Events > d.Events {
		t.Fatalf("loaded %d events of %d", st.Events, d.Events)
	}
	res, refs, err := RunSegments(context.Background(), ix, suite, d.At(), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawData(t, d)
	nonTrivial := 0
	for i, c := range suite {
		want := roaring.New()
		for num, in := range raw {
			in.InSegment = func(id string) bool { return refs[id].Contains(uint32(num)) }
			if oracle.Match(c.Node, in, d.At()) {
				want.Add(uint32(num))
			}
		}
		got := refs[c.Name]
		if !got.Equals(want) {
			t.Errorf("%s: index %d members, oracle %d", c.Name, got.GetCardinality(), want.GetCardinality())
		}
		if res.Cases[i].Size != got.GetCardinality() {
			t.Errorf("%s: reported size %d, members %d", c.Name, res.Cases[i].Size, got.GetCardinality())
		}
		if n := want.GetCardinality(); n > 0 && n < uint64(d.Profiles) {
			nonTrivial++
		}
		t.Logf("%-24s %6d", c.Name, got.GetCardinality())
	}
	if nonTrivial < len(suite)*2/3 {
		t.Errorf("only %d of %d cases split the population", nonTrivial, len(suite))
	}
}
