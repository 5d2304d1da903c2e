package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// importSummary is what an import did.
type importSummary struct {
	Target    string // where the messages went
	Files     int    // named on the command line
	FilesRead int    // read to their end
	Bytes     int64

	Read       int // messages read (non-blank lines, data rows)
	Accepted   int
	Duplicates int
	Rejected   int
	LocalOnly  int // rejected while reading and not in the dead-letter log
	Retries    int // HTTP requests retried

	Reasons    []*rejectReason // in order of first occurrence
	byReason   map[string]*rejectReason
	FileErrors []fileError
	Stopped    error // why the import stopped before the end, if it did
	Elapsed    time.Duration
}

// rejectReason counts the messages rejected for one reason.
type rejectReason struct {
	Reason string
	Count  int
	First  location
	Detail string // about the first, when the reason has more to say
}

type fileError struct {
	Path string
	Err  error
}

func newImportSummary(target string) *importSummary {
	return &importSummary{Target: target, byReason: map[string]*rejectReason{}}
}

func (s *importSummary) reject(reason string, loc location, detail string, notLogged bool) {
	s.Rejected++
	if notLogged {
		s.LocalOnly++
	}
	r := s.byReason[reason]
	if r == nil {
		r = &rejectReason{Reason: reason, First: loc, Detail: detail}
		s.byReason[reason] = r
		s.Reasons = append(s.Reasons, r)
	}
	r.Count++
}

func (s *importSummary) fileFailed(path string, err error) {
	s.FileErrors = append(s.FileErrors, fileError{path, err})
}

// NotSent counts the messages read but not acknowledged: those pending
// when the import stopped.
func (s *importSummary) NotSent() int {
	return s.Read - s.Accepted - s.Duplicates - s.Rejected
}

// topReasons is how many reasons the summary lists.
const topReasons = 10

func (s *importSummary) print(w io.Writer) {
	files := fmt.Sprintf("%d", s.Files)
	if s.FilesRead != s.Files {
		files = fmt.Sprintf("%d of %d", s.FilesRead, s.Files)
	}
	files += " file"
	if s.Files != 1 {
		files += "s"
	}
	fmt.Fprintf(w, "\nImported %s (%s) into %s in %s.\n\n", files, byteSize(s.Bytes), s.Target, s.Elapsed.Round(time.Millisecond))

	width := len(fmt.Sprint(s.Read))
	row := func(name string, n any, note string) {
		line := fmt.Sprintf("  %-16s %*v", name, width, n)
		if note != "" {
			line += "  " + note
		}
		fmt.Fprintln(w, line)
	}
	row("messages read", s.Read, "")
	row("accepted", s.Accepted, "")
	row("duplicates", s.Duplicates, "already stored: skipped")
	row("rejected", s.Rejected, "")
	if n := s.NotSent(); n > 0 {
		row("not sent", n, "read, but not acknowledged before the import stopped")
	}
	if s.Retries > 0 {
		row("requests retried", s.Retries, "")
	}

	if len(s.Reasons) > 0 {
		fmt.Fprintf(w, "\nRejected, by reason (with the first occurrence):\n")
		rs := slices.Clone(s.Reasons)
		slices.SortStableFunc(rs, func(a, b *rejectReason) int { return b.Count - a.Count })
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for i, r := range rs {
			if i == topReasons {
				n := 0
				for _, r := range rs[i:] {
					n += r.Count
				}
				fmt.Fprintf(tw, "  ...\tand %d more reasons\t(%d messages)\n", len(rs)-i, n)
				break
			}
			first := r.First.String()
			if r.Detail != "" {
				first += ": " + r.Detail
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\n", r.Count, r.Reason, first)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRejected messages do not make the import fail.")
		switch {
		case s.LocalOnly == 0:
			fmt.Fprintf(w, " Each is kept in the dead-letter log (GET /api/rejections).\n")
		case s.LocalOnly == s.Rejected:
			fmt.Fprintf(w, " They were rejected while reading the files, so they are listed only here.\n")
		default:
			fmt.Fprintf(w, " The %d rejected while reading the files are listed only here;\nthe others are kept in the server's dead-letter log (GET /api/rejections).\n", s.LocalOnly)
		}
	}

	if len(s.FileErrors) > 0 {
		fmt.Fprintf(w, "\nCould not read %d of %d files (the import exits with an error):\n", len(s.FileErrors), s.Files)
		for _, fe := range s.FileErrors {
			fmt.Fprintf(w, "  %v\n", fe.Err)
		}
	}
	if s.Stopped != nil {
		fmt.Fprintf(w, "\nStopped early: %v\nImporting the same files again is safe: messages already stored are skipped as duplicates.\n", s.Stopped)
	}
}
