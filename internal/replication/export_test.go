package replication

import "time"

// SetLaneDefaults sets the window and idle time of the engines made next,
// and returns what puts them back.
func SetLaneDefaults(window int, idle time.Duration) (restore func()) {
	w, i := defaultWindow, defaultLaneIdle
	defaultWindow, defaultLaneIdle = window, idle
	return func() { defaultWindow, defaultLaneIdle = w, i }
}

// SetDiffPage sets how many versions diff lists per page of a
// destination, and returns what puts it back.
func SetDiffPage(n int32) (restore func()) {
	p := diffPage
	diffPage = n
	diffBuffered.Store(0)
	return func() { diffPage = p }
}

// DiffBuffered returns the most versions a destination listing of diff
// has held at once since SetDiffPage.
func DiffBuffered() int { return int(diffBuffered.Load()) }
