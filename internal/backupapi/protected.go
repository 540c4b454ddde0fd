package backupapi

import (
	"context"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
)

// protectedOut is AWS Backup's ProtectedResource.
type protectedOut struct {
	ResourceArn          string
	ResourceType         string
	LastBackupTime       *epoch
	ResourceName         string
	LastBackupVaultArn   string
	LastRecoveryPointArn string
}

func (h *Handler) renderProtected(r *backup.ProtectedResource) protectedOut {
	return protectedOut{
		ResourceArn: r.ResourceARN, ResourceType: r.ResourceType, LastBackupTime: ts(r.LastBackupTime),
		ResourceName: h.providers.ResourceName(r.ResourceARN), LastBackupVaultArn: r.LastBackupVaultARN,
		LastRecoveryPointArn: r.LastRecoveryPointARN,
	}
}

// protectedPage renders one page of resources as both list operations
// answer.
func protectedPage(c *call, rs []*backup.ProtectedResource) (any, error) {
	pg, next, err := page(c, rs, func(r *backup.ProtectedResource) string { return r.ResourceARN })
	if err != nil {
		return nil, err
	}
	out := struct {
		Results   []protectedOut
		NextToken string `json:",omitempty"`
	}{Results: []protectedOut{}, NextToken: next}
	for _, r := range pg {
		out.Results = append(out.Results, c.h.renderProtected(r))
	}
	return out, nil
}

func listProtected(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	rs, err := c.h.jobs.ListProtectedResources(ctx, c.account, "")
	if err != nil {
		return nil, err
	}
	return protectedPage(c, rs)
}

func listProtectedByVault(ctx context.Context, c *call) (any, error) {
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	// Vaults are not shared between accounts: another account's vault is
	// one the caller cannot see.
	if acct := c.r.URL.Query().Get("backupVaultAccountId"); acct != "" && acct != c.account {
		return nil, errf("ResourceNotFoundException", 400, "Backup vault %s of account %s does not exist.", name, acct)
	}
	rs, err := c.h.jobs.ListProtectedResources(ctx, c.account, name)
	if err != nil {
		return nil, err
	}
	return protectedPage(c, rs)
}

func describeProtected(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	r, err := c.h.jobs.DescribeProtectedResource(ctx, c.account, c.r.PathValue("arn"))
	if err != nil {
		return nil, err
	}
	out := struct {
		protectedOut
		LatestRestoreExecutionTimeMinutes      *int64 `json:",omitempty"`
		LatestRestoreJobCreationDate           *epoch `json:",omitempty"`
		LatestRestoreRecoveryPointCreationDate *epoch `json:",omitempty"`
	}{protectedOut: c.h.renderProtected(r)}
	if lr := r.LatestRestore; lr != nil {
		minutes := int64(lr.ExecutionTime.Round(time.Minute) / time.Minute)
		out.LatestRestoreExecutionTimeMinutes = &minutes
		out.LatestRestoreJobCreationDate = ts(lr.JobCreationDate)
		out.LatestRestoreRecoveryPointCreationDate = ts(lr.RecoveryPointCreationDate)
	}
	return out, nil
}
