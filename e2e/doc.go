// Package e2e holds end-to-end tests against the real binary: TestMain
// builds cmd/cohort once, and each test runs it as a separate process
// (`cohort serve` on a free loopback port with a temporary data directory)
// and talks to it only over HTTP, as users and their SDKs do.
//
// The tests drive it with the official Segment and RudderStack Node SDKs
// (testdata/sdk; `npm ci` is run there when node_modules is missing, so node
// and npm must be installed), kill it with SIGKILL mid-stream and check that
// every acknowledged message survives exactly once, and stop it with SIGTERM
// under load and check that it drains and exits 0.
//
// This file exists so the package has a non-test file; all the code is in
// the _test.go files.
package e2e
