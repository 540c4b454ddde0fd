package efs

import "os"

// SetOpen makes backups open files with open until the returned func is
// called.
func SetOpen(open func(path string) (*os.File, error)) (restore func()) {
	openHook.Store(&open)
	return func() { openHook.Store(nil) }
}

// OpenFile is how backups open files.
var OpenFile = openFile
