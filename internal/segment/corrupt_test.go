package segment_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/gen"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/segment"
)

// TestDamagedIndexFilesRebuild: an index file that was damaged (a byte
// flipped, cut short, missing, or a checkpoint from another store) is
// reported in the log with its file, and the index is rebuilt from the
// stored events: it answers as one loaded from the store.
func TestDamagedIndexFilesRebuild(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the file the log must name
	}{
		{"part byte flipped", func(t *testing.T, dir string) string {
			f := firstFile(t, dir, "p-*.col")
			b, _ := os.ReadFile(f)
			b[len(b)/2] ^= 0x40
			os.WriteFile(f, b, 0o644)
			return f
		}},
		{"part cut short", func(t *testing.T, dir string) string {
			f := firstFile(t, dir, "p-*.col")
			st, _ := os.Stat(f)
			os.Truncate(f, st.Size()-100)
			return f
		}},
		{"part missing", func(t *testing.T, dir string) string {
			f := firstFile(t, dir, "p-*.col")
			os.Remove(f)
			return f
		}},
		{"checkpoint byte flipped", func(t *testing.T, dir string) string {
			f := firstFile(t, dir, "ckpt-*.idx")
			b, _ := os.ReadFile(f)
			b[len(b)/3] ^= 0x01
			os.WriteFile(f, b, 0o644)
			return f
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w := newWorldWith(t, dir)
			w.load(t, gen.Config{Seed: 3, Profiles: 150, Events: 3000, Now: genNow, Days: 20})
			if w.ckptErr != nil {
				t.Fatal(w.ckptErr)
			}
			file := c.damage(t, dir)
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			ctx := context.Background()
			re, err := index.Open(ctx, w.st.DB(), w.ws.Num, index.LoadOptions{Dir: dir, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer re.Close()
			if !strings.Contains(logBuf.String(), "rebuilding the index") || !strings.Contains(logBuf.String(), filepath.Base(file)) {
				t.Fatalf("the log does not report the damaged file %s:\n%s", filepath.Base(file), logBuf.String())
			}
			fresh, err := index.Load(ctx, w.st.DB(), w.ws.Num)
			if err != nil {
				t.Fatal(err)
			}
			cg := &condGen{r: rand.New(rand.NewPCG(11, 12))}
			for range 200 {
				src := cg.cond()
				n, err := condition.Parse([]byte(src))
				if err != nil {
					t.Fatal(err)
				}
				a, err := segment.Evaluate(re, n, genNow, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				b, err := segment.Evaluate(fresh, n, genNow, nil, false)
				if err != nil {
					t.Fatal(err)
				}
				if !a.Members.Equals(b.Members) {
					t.Fatalf("%s: rebuilt index %d members, loaded %d", src, a.Members.GetCardinality(), b.Members.GetCardinality())
				}
			}
			// The rebuilt index checkpoints again, and the next open uses it.
			if err := re.Checkpoint(w.st.DB(), w.st.Sync); err != nil {
				t.Fatal(err)
			}
			logBuf.Reset()
			again, err := index.Open(ctx, w.st.DB(), w.ws.Num, index.LoadOptions{Dir: dir, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if !strings.Contains(logBuf.String(), "opened from its checkpoint") {
				t.Fatalf("after the rebuild's checkpoint the index was not opened from it:\n%s", logBuf.String())
			}
		})
	}
}

func firstFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(files) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	return files[0]
}
