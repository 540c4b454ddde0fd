package rds

import (
	"context"
	"fmt"

	"github.com/bulwark/bulwark/internal/backup"
)

// pointSource is what a restore of a point reads: the point itself, or
// for a continuous point the base and log pieces the restore time needs.
func pointSource(run *backup.RestoreRun) (*pgSource, error) {
	pieces := run.Pieces()
	if len(pieces) == 0 {
		return &pgSource{base: run, baseMeta: run.Point.ResourceMetadata}, nil
	}
	if pieces[0].Kind != backup.PieceBase {
		return nil, fmt.Errorf("continuous point %s: its restore does not start with a base", run.Point.ARN)
	}
	src := &pgSource{base: pieces[0], baseMeta: pieces[0].Metadata, pitr: true, target: run.RestoreTime}
	if src.baseMeta == nil {
		src.baseMeta = run.Point.ResourceMetadata
	}
	for _, p := range pieces[1:] {
		if p.Kind == backup.PieceLog {
			src.logs = append(src.logs, p)
		}
	}
	return src, nil
}

// isContinuousBase reports whether a backup is the base of a continuous
// point.
func isContinuousBase(run *backup.BackupRun) bool { return run.Continuous }

// Stream streams the cluster's WAL into a continuous point (see stream).
func (pg *Postgres) Stream(ctx context.Context, reg *backup.Registered, password string, run *backup.StreamRun) error {
	return pg.stream(ctx, reg, password, run.Resource.ARN, run)
}

// EndStream drops the replication slot of the resource's continuous
// backup, which would otherwise keep the cluster's WAL for good.
func (pg *Postgres) EndStream(ctx context.Context, reg *backup.Registered, password string, rp *backup.RecoveryPoint) error {
	return dropSlot(ctx, settingsOf(reg), password, slotName(rp.ResourceARN))
}

var _ StreamingEngine = (*Postgres)(nil)
