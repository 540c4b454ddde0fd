package headroom

import (
	"testing"

	"go.uber.org/goleak"
)

// Run must end with its context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
