package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPureGo: the server binary imports nothing the benchmarks alone use
// (DuckDB needs cgo, pgx a PostgreSQL) and builds with cgo off and no C
// compiler (CC=false fails any attempt to use one).
func TestPureGo(t *testing.T) {
	list := exec.Command("go", "list", "-deps", ".")
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"duckdb", "jackc/pgx", "cohort/internal/bench", "lib/pq"} {
			if strings.Contains(dep, banned) {
				t.Errorf("cmd/cohort depends on %s", dep)
			}
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "cohort"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "CC=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}
