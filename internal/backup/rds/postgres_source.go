package rds

import "github.com/bulwark/bulwark/internal/backup"

// pointSource is what a restore of a point reads: the point itself.
func pointSource(run *backup.RestoreRun) (*pgSource, error) {
	return &pgSource{base: run, baseMeta: run.Point.ResourceMetadata}, nil
}

// isContinuousBase reports whether a backup is the base of a continuous
// point.
func isContinuousBase(run *backup.BackupRun) bool { return false }
