package server

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

// startBackupScheduler runs the region's backup plans until ctx ends; Close
// cancels ctx and waits for it before it closes the job service. The lease
// in the metadata store lets one process of the region act at a time.
//
// With several gateways, the scheduler acts in the one holding the region's
// scheduler lease (gateway.go), which runs it.
func (r *Region) startBackupScheduler(ctx context.Context) {
	scfg := backup.SchedulerConfig{Jobs: r.Jobs, Logger: r.log, Now: r.cfg.BackupClock, Interval: r.cfg.BackupSchedulerInterval,
		Reports: r.Audit}
	if r.multi {
		scfg.Held = r.schedulerHeld
	}
	sc := backup.NewScheduler(scfg)
	r.BackupScheduler = sc
	if r.multi {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		sc.Run(ctx)
	}()
}
