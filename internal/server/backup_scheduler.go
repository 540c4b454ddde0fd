package server

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

// startBackupScheduler runs the region's backup plans until ctx ends; Close
// cancels ctx and waits for it before it closes the job service. The lease
// in the metadata store lets one process of the region act at a time.
func (r *Region) startBackupScheduler(ctx context.Context) {
	sc := backup.NewScheduler(backup.SchedulerConfig{Jobs: r.Jobs, Logger: r.log, Now: r.cfg.BackupClock, Interval: r.cfg.BackupSchedulerInterval,
		Reports: r.Audit})
	r.BackupScheduler = sc
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		sc.Run(ctx)
	}()
}
