// Command cohort-bench measures Cohort: HTTP ingestion, segment evaluation,
// real-time membership changes, and the same conditions on PostgreSQL and
// DuckDB. It is apart from the cohort server binary because the peer
// engines' drivers (DuckDB needs cgo and a C compiler) have no place in a
// server that never uses them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cohortdb/cohort/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "version" {
		fmt.Fprintln(stdout, "cohort-bench", buildinfo.String())
		return 0
	}
	err := benchCmd(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cohort-bench: %v\n", err)
		return 1
	}
	return 0
}
