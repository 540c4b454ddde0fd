package pg

import (
	"testing"

	"go.uber.org/goleak"
)

// The committer goroutine must stop with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
