// Package buildinfo owns the version string the binaries print: the
// release version and, when built from a git checkout, the commit.
package buildinfo

import "runtime/debug"

// Version is the release version of the binaries.
const Version = "0.1.0"

// String is the version and, when the binary was built from a git
// checkout, the commit it was built from ("+dirty" with local changes).
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Version
	}
	rev = rev[:min(12, len(rev))]
	if dirty {
		rev += "+dirty"
	}
	return Version + " (" + rev + ")"
}
