package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a region starts must be gone after Close. Idle client
// connections belong to the test's HTTP client, not to the region.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}
