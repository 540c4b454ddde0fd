//go:build !linux

package topology

import "time"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is missing: there,
// keepalive alone ends a connection to a peer that went silent, and
// unacknowledged data waits for the system's retransmission limit.
func setUserTimeout(uintptr, time.Duration) error { return nil }
