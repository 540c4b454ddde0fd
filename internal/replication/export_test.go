package replication

import "time"

// SetLaneDefaults sets the window and idle time of the engines made next,
// and returns what puts them back.
func SetLaneDefaults(window int, idle time.Duration) (restore func()) {
	w, i := defaultWindow, defaultLaneIdle
	defaultWindow, defaultLaneIdle = window, idle
	return func() { defaultWindow, defaultLaneIdle = w, i }
}
