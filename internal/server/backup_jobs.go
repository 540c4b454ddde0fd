package server

import (
	"context"
	"os"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/efs"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/iam"
)

// openBackupJobs starts the region's backup job service, whose vault
// repositories live under SharedDir/vaults, encrypted with the deployment
// key. It backs up the region's buckets, the databases and directories
// registered with it (Resources), and the configuration's other resource
// types.
func (r *Region) openBackupJobs(ctx context.Context) error {
	key := r.vaultKey
	if key == nil {
		key = r.cfg.DeploymentKey
	}
	if key == nil {
		var err error
		if key, err = iam.LoadDeploymentKey(filepath.Join(r.cfg.SharedDir, "deployment.key"), ""); err != nil {
			return err
		}
	}
	r.vaultKey = key
	rs, err := backup.NewResources(r.Backup, key)
	if err != nil {
		return err
	}
	r.Resources = rs
	rs.SetPathPolicy(r.cfg.ResourceRoots, func() string { return r.admin })
	// The database engines keep a copy of a database (SQLite) or a
	// restore's binary log files (MySQL) in the data directory, where the
	// disk guard admits them, between the database and the vault.
	scratch := filepath.Join(r.cfg.DataDir, "tmp")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	builtin := []backup.Provider{
		backup.NewS3Provider(r.Store),
		rds.New(rs, map[string]rds.Engine{
			backup.EnginePostgres: rds.NewPostgres(rds.PostgresConfig{Dir: filepath.Join(r.cfg.DataDir, "rds", "postgres"), Logger: r.log}),
			backup.EngineSQLite:   rds.NewSQLite(rds.SQLiteConfig{ScratchDir: scratch, Space: r.Disk}),
			backup.EngineMySQL:    rds.NewMySQL(rs, rds.MySQLConfig{ScratchDir: scratch, Space: r.Disk}),
		}),
		efs.New(rs).SetScratchDir(filepath.Join(scratch, "restore-tests")),
	}
	providers, err := backup.NewRegistry(append(builtin, r.cfg.BackupProviders...)...)
	if err != nil {
		return err
	}
	svc, err := backup.NewService(ctx, backup.ServiceConfig{
		Catalog: r.Backup, Providers: providers, Dir: filepath.Join(r.cfg.SharedDir, "vaults"), Secret: key, Logger: r.log,
		Registerer: r.Registry,
		Remote:     remoteCopies{r}, RemoteRegions: r.otherRegions(),
		Space:   r.Disk,
		Admin:   func() string { return r.admin },
		Gateway: r.gatewayOf(),
	})
	if err != nil {
		return err
	}
	r.Jobs = svc
	return nil
}
