// Package console owns Cohort's web console: the static files of a
// single-page application (plain ES modules, no build step) embedded in
// the binary, and the handler that serves them. The console talks to the
// public HTTP API only, signed in with a workspace api key kept in the
// tab's sessionStorage; it loads nothing from elsewhere (no CDN, no
// external fonts), so it works offline.
package console
