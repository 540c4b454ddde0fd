package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

// Backup Vault Lock and UpdateRecoveryPointLifecycle. The handlers only
// authorize and translate: the lock's rules, and that they hold for every
// caller once authorized, are the backup package's (lock.go).

func putVaultLock(ctx context.Context, c *call) (any, error) {
	var in struct {
		MinRetentionDays  *int64
		MaxRetentionDays  *int64
		ChangeableForDays *int64
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	_, err := c.h.cat.PutVaultLock(ctx, c.account, name, backup.VaultLockInput{
		MinRetentionDays: in.MinRetentionDays, MaxRetentionDays: in.MaxRetentionDays, ChangeableForDays: in.ChangeableForDays,
	})
	return nil, err
}

func deleteVaultLock(ctx context.Context, c *call) (any, error) {
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	return nil, c.h.cat.DeleteVaultLock(ctx, c.account, name)
}

func updatePointLifecycle(ctx context.Context, c *call) (any, error) {
	var in struct{ Lifecycle *backup.Lifecycle }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	p, err := c.h.jobs.UpdateRecoveryPointLifecycle(ctx, c.account, c.r.PathValue("name"), arn, in.Lifecycle)
	if err != nil {
		return nil, err
	}
	out := struct {
		BackupVaultArn      string
		RecoveryPointArn    string
		Lifecycle           *backup.Lifecycle
		CalculatedLifecycle *calculatedLifecycleOut `json:",omitempty"`
	}{BackupVaultArn: p.VaultARN, RecoveryPointArn: p.ARN, Lifecycle: p.Lifecycle}
	if cl := p.CalculatedLifecycle; cl != nil {
		out.CalculatedLifecycle = &calculatedLifecycleOut{tsp(cl.MoveToColdStorageAt), tsp(cl.DeleteAt)}
	}
	return out, nil
}
