package segment_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running: the
// manager's build worker and every goroutine it starts must stop at Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
